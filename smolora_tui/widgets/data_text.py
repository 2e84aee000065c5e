"""How data reads on the Data mode: preview cells, a rendered sample, the doctor's summary and problems."""

from __future__ import annotations

import json

from rich.text import Text

from smolora_engine.data.render import mask_note

CELL_WIDTH = 60
HISTOGRAM_LABELS = 22  # a histogram line's columns besides its bar: "  low-high   " and " count"


def cell(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "⏎")
    return text if len(text) <= CELL_WIDTH else text[:CELL_WIDTH - 1] + "…"


def histogram(buckets: list, width: int = 40) -> str:
    """The doctor's token-length histogram ([low, high, count] buckets) as text bars."""
    if not buckets:
        return ""
    top = max(count for _low, _high, count in buckets) or 1
    return "\n".join(f"{f'{low}-{high}' if high > low else low:>13} {'█' * round(count / top * width)} {count}"
                     for low, high, count in buckets)


def report_summary(report: dict) -> str:
    """The doctor's report in a few lines: rows kept, split, duplicates and problems, token counts;
    when the data cannot be used at all, its error first."""
    error = report.get("error")
    tokens = report.get("tokens") or {}
    problems = report.get("problems", [])
    shape = report.get("shape") or "shape not recognised"
    lines = [f"{report.get('rows_kept', 0):,} usable of {report.get('rows_read', 0):,} rows ({shape})"
             f"  ·  {report.get('train_rows', 0):,} train / {report.get('eval_rows', 0):,} eval"
             f"  ·  {report.get('duplicates', 0):,} duplicates  ·  {len(problems):,} problems"]
    if error:
        lines = [f"cannot train on this data: {error}", "fix the rows below (select one to see it), or the "
                 "column mapping above, then press c again"] + (lines if report.get("rows_read") else [])
    if tokens:
        lines.append(f"tokens per sample: min {tokens.get('min')}, median {tokens.get('median')}, "
                     f"p95 {tokens.get('p95')}, max {tokens.get('max')}  ·  {tokens.get('per_epoch', 0):,} "
                     f"per epoch, {tokens.get('trained_per_epoch', 0):,} trained  ·  "
                     f"{report.get('truncated', 0)} truncated")
    if report.get("truncated") and report.get("length_advice"):
        lines.append(f"{report['truncated']} truncated: {report['length_advice']}")
    return "\n".join(line for line in lines if line)


def report_histogram(report: dict, width: int = 80) -> str:
    """The doctor's token-length histogram, its bars fitting in `width` columns."""
    return histogram(report.get("histogram") or [], max(8, min(40, width - HISTOGRAM_LABELS)))


def render_sample(sample: dict, index: int) -> Text:
    """A rendered sample: the text the loss is on highlighted, the masked text dimmed."""
    text = Text()
    text.append(f"sample {index + 1} · {sample.get('where', '')} · {sample.get('tokens', 0)} tokens, "
                f"{sample.get('trained_tokens', 0)} trained (highlighted; dimmed text is masked) · v: next\n",
                style="bold")
    if sample.get("mask") == "template":
        text.append("loss placed by the chat template's {% generation %} markers"
                    + mask_note(sample.get("mask_extra", 0), sample.get("mask_missed", 0)) + "\n", style="italic")
    for segment in sample.get("segments", []):
        text.append(segment.get("text", ""), style="bold green" if segment.get("trained") else "dim")
    return text


def problem_where(problem: dict) -> str:
    file, line, row = problem.get("file", ""), problem.get("line"), problem.get("row")
    return f"{file}:{line}" if line is not None else f"{file} row {row}" if row is not None else file

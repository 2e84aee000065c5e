"""The data doctor, and the preparation that training uses: read, shape, chunk, de-duplicate,
render, split. Every row that is not kept is counted and, where it is a problem, reported
with its file and line.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..project import DataSettings
from .chat_format import ChatFormat
from .prefix import MIN_SHARED, shared_prefix_length
from .readers import read_source
from .rows import DataProblem, DataSourceError, Row
from .render import MASKS, RenderError, Rendered, render_sample
from .shapes import Sample, detect_shape, to_sample

DETECT_ROWS = 200


class DataError(Exception):
    """The data cannot be used at all (no usable rows, no such source).

    `report` is the doctor's report so far when there is one (every problem row that made the data unusable).
    """

    def __init__(self, message: str, report: DataReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class DataReport:
    source: str
    shape: str | None = None
    rows_read: int = 0
    rows_kept: int = 0
    duplicates: int = 0
    truncated: int = 0
    dropped_too_long: int = 0
    problems: list[DataProblem] = field(default_factory=list)
    token_lengths: list[int] = field(default_factory=list, repr=False)
    trained_tokens: int = 0
    train_rows: int = 0
    eval_rows: int = 0
    eval_source: str = ""
    mask: str = ""  # how the loss was placed (render.MASKS), once rendered
    mask_missed: list[str] = field(default_factory=list)  # rows whose template markers left answer tokens out
    length_advice: str = ""  # what to change when samples were truncated
    shared_prefix: int = 0  # untrained tokens every training sample starts with (prefix.py)

    @property
    def tokens(self) -> dict[str, Any] | None:
        if not self.token_lengths:
            return None
        ordered = sorted(self.token_lengths)
        return {
            "min": ordered[0], "median": int(statistics.median(ordered)),
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], "max": ordered[-1],
            "per_epoch": sum(ordered), "trained_per_epoch": self.trained_tokens,
        }

    def problem_counts(self) -> Counter:
        return Counter(p.kind for p in self.problems)

    def most_common_problem(self) -> DataProblem | None:
        counts = self.problem_counts()
        if not counts:
            return None
        kind = counts.most_common(1)[0][0]
        return next(p for p in self.problems if p.kind == kind)

    def histogram(self, bins: int = 10) -> list[tuple[int, int, int]]:
        """(low, high, count) buckets of token lengths."""
        if not self.token_lengths:
            return []
        low, high = min(self.token_lengths), max(self.token_lengths)
        width = max(1, -(-(high - low + 1) // bins))
        counts = Counter((n - low) // width for n in self.token_lengths)
        return [(low + i * width, low + (i + 1) * width - 1, counts.get(i, 0)) for i in range(bins)
                if low + i * width <= high]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "shape": self.shape, "rows_read": self.rows_read, "rows_kept": self.rows_kept,
            "duplicates": self.duplicates, "truncated": self.truncated, "dropped_too_long": self.dropped_too_long,
            "train_rows": self.train_rows, "eval_rows": self.eval_rows, "eval_source": self.eval_source,
            "problem_counts": dict(self.problem_counts()), "problems": [p.to_dict() for p in self.problems],
            "tokens": self.tokens, "histogram": self.histogram(), "mask": self.mask,
            "mask_missed_rows": self.mask_missed, "length_advice": self.length_advice,
            "shared_prefix": self.shared_prefix,
        }

    def summary(self) -> str:
        lines = [f"{self.source}: {self.shape or 'unknown'} data, {self.rows_read} rows read, "
                 f"{self.rows_kept} kept"]
        if self.duplicates:
            lines.append(f"  {self.duplicates} exact duplicates removed")
        if self.truncated or self.dropped_too_long:
            lines.append(f"  {self.truncated} truncated and {self.dropped_too_long} dropped for length"
                         + (f": {self.length_advice}" if self.length_advice else ""))
        if tokens := self.tokens:
            lines.append(f"  tokens per sample: min {tokens['min']}, median {tokens['median']}, p95 {tokens['p95']}, "
                         f"max {tokens['max']}; {tokens['per_epoch']} tokens per epoch "
                         f"({tokens['trained_per_epoch']} trained)")
        if self.shared_prefix >= MIN_SHARED:
            lines.append(f"  every sample starts with the same {self.shared_prefix} untrained tokens")
        if self.train_rows or self.eval_rows:
            lines.append(f"  split: {self.train_rows} train, {self.eval_rows} eval"
                         + (f" ({self.eval_source})" if self.eval_source else ""))
        if self.mask:
            lines.append(f"  loss on the answers, placed by {MASKS[self.mask]}")
        if self.mask_missed:
            lines.append(f"  in {len(self.mask_missed)} row(s) the template's markers leave answer tokens or the "
                         f"turn's end out; they are trained too (first at {self.mask_missed[0]})")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s): "
                         + ", ".join(f"{n} {k}" for k, n in self.problem_counts().most_common()))
        return "\n".join(lines)


@dataclass
class PreparedData:
    train: list[Rendered]
    eval: list[Rendered]
    report: DataReport


def _chunk(samples: list[Sample], settings: DataSettings, tokenizer) -> list[Sample]:
    if settings.chunk_size <= 0:
        return samples
    out = []
    for sample in samples:
        if sample.text is None:
            out.append(sample)  # chats and prompt/completion are never cut
            continue
        if settings.chunk_unit == "words" or tokenizer is None:
            out.extend(Sample(sample.file, sample.line, sample.index, text=piece)
                       for piece in chunk_words(sample.text, settings.chunk_size))
        else:
            offsets = tokenizer(sample.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
            for i in range(0, len(offsets), settings.chunk_size):
                start = offsets[i][0]
                end = offsets[min(i + settings.chunk_size, len(offsets)) - 1][1]
                if piece := sample.text[start:end].strip():
                    out.append(Sample(sample.file, sample.line, sample.index, text=piece))
    return out


def chunk_words(text: str, size: int) -> list[str]:
    """SmoLoRA's chunk_texts for one text: pieces of `size` words."""
    words = text.split()
    return [" ".join(words[i:i + size]) for i in range(0, len(words), size)] if size > 0 else [text]


def collect_samples(source: str, settings: DataSettings, report: DataReport,
                    limit: int | None = None) -> list[Sample]:
    """Read the source and shape its rows (the first `limit` usable ones, or all); problems go into the report."""
    try:
        items: Iterable[Row | DataProblem] = read_source(source, settings.format, settings.text_split)
        buffered: list[Row] = []
        samples: list[Sample] = []
        shape = None if settings.shape == "auto" else settings.shape
        for item in items:
            if isinstance(item, DataProblem):
                report.rows_read += 1 if item.kind not in ("empty", "binary", "not_read") else 0
                report.problems.append(item)
                continue
            report.rows_read += 1
            if shape is None:
                buffered.append(item)
                if len(buffered) < DETECT_ROWS:
                    continue
                shape = _detect(buffered, settings, report)
                samples.extend(_shape_rows(buffered, shape, settings, report))
                buffered = []
            else:
                samples.extend(_shape_rows([item], shape, settings, report))
            if limit is not None and len(samples) >= limit:
                break
        if shape is None and buffered:
            shape = _detect(buffered, settings, report)
            samples.extend(_shape_rows(buffered, shape, settings, report))
    except DataSourceError as exc:
        raise DataError(str(exc)) from exc
    report.shape = report.shape or shape
    return samples


def _detect(rows: list[Row], settings: DataSettings, report: DataReport) -> str:
    shape = detect_shape([r.data for r in rows], settings.columns)
    if shape is None:
        keys = sorted({k for r in rows for k in r.data})
        raise DataError(
            f"{rows[0].file}: cannot tell what the rows are from their columns ({', '.join(keys) or 'none'}); "
            "expected text, instruction/output, prompt/completion, or messages/conversations; "
            "map yours with data.columns (e.g. data.columns.text = \"body\") or set data.shape"
        )
    report.shape = shape
    return shape


def _shape_rows(rows: list[Row], shape: str, settings: DataSettings, report: DataReport) -> list[Sample]:
    out = []
    for row in rows:
        sample = to_sample(row, shape, settings.columns)
        if isinstance(sample, DataProblem):
            report.problems.append(sample)
        else:
            out.append(sample)
    return out


def _dedupe(samples: list[Sample], report: DataReport) -> list[Sample]:
    seen: dict[str, str] = {}
    out = []
    for sample in samples:
        key = sample.key()
        if key in seen:
            report.duplicates += 1
            report.problems.append(DataProblem(sample.file, sample.line, f"duplicate of {seen[key]} (removed)",
                                               sample.index, kind="duplicate"))
            continue
        seen[key] = sample.where
        out.append(sample)
    return out


def _render_all(samples: list[Sample], tokenizer, max_length: int, over_length: str,
                report: DataReport, fmt: ChatFormat) -> list[Rendered]:
    out = []
    for sample in samples:
        def problem(reason: str, kind: str) -> None:
            report.problems.append(DataProblem(sample.file, sample.line, reason, sample.index, kind=kind))

        try:
            rendered = render_sample(sample, tokenizer, max_length, fmt)
        except RenderError as exc:
            problem(str(exc), "render")
            continue
        if rendered.truncated:
            if over_length == "drop":
                report.dropped_too_long += 1
                problem(f"longer than max_length ({max_length} tokens): dropped", "too_long")
                continue
            report.truncated += 1
        if rendered.trained_tokens == 0:
            problem(f"nothing left to train on within max_length ({max_length} tokens): the answer starts after it",
                    "too_long")
            continue
        if rendered.mask and report.mask != "template":
            report.mask = rendered.mask
        if rendered.mask_missed:
            report.mask_missed.append(sample.where)
        report.token_lengths.append(len(rendered.input_ids))
        report.trained_tokens += rendered.trained_tokens
        out.append(rendered)
    return out


def length_advice(shape: str | None, settings: DataSettings, max_length: int) -> str:
    """What to change so that no text is cut off at max_length."""
    if shape == "text" and settings.chunk_size <= 0:
        return (f"each keeps its first {max_length} tokens only; data.chunk_size = {max_length} splits long texts "
                "into pieces that are all trained on")
    return (f"each keeps its first {max_length} tokens only; raise training.max_length, or set "
            "data.over_length = \"drop\" to leave them out")


def no_usable_rows(report: DataReport) -> DataError:
    common = report.most_common_problem()
    if common is None:
        return DataError(f"{report.source}: no rows found; is it the right file or folder?", report)
    count = report.problem_counts()[common.kind]
    return DataError(f"{report.source}: no usable rows ({report.rows_read} read); most common problem, "
                     f"in {count} row(s): {common.reason} (first at {common.where})", report)


def prepare(settings: DataSettings, tokenizer=None, max_length: int = 1024, seed: int | None = None,
            source: str | None = None) -> PreparedData:
    """Everything training needs from the data; with no tokenizer, only read, shape and de-duplicate."""
    source = source or settings.path
    if not source:
        raise DataError("no data set: set data.path to a file or folder")
    report = DataReport(source=str(source))
    samples = collect_samples(source, settings, report)
    samples = _chunk(samples, settings, tokenizer)
    if settings.dedupe:
        samples = _dedupe(samples, report)
    if tokenizer is not None:
        rendered = _render_all(samples, tokenizer, max_length, settings.over_length, report, ChatFormat.of(settings))
    else:
        rendered = [Rendered([], [], sample=s) for s in samples]
    report.rows_kept = len(rendered)
    if report.truncated:
        report.length_advice = length_advice(report.shape, settings, max_length)
    report.problems.sort(key=lambda p: (p.file, p.line or 0, p.index or 0))
    if not rendered:
        raise no_usable_rows(report)
    train, evaluation = rendered, []
    if settings.eval_path and source == settings.path:
        eval_settings = DataSettings(**{**settings.__dict__, "path": settings.eval_path, "eval_path": ""})
        evaluation = prepare(eval_settings, tokenizer, max_length, source=settings.eval_path).train
        report.eval_source = settings.eval_path
    elif settings.eval_ratio > 0 and len(rendered) >= 10:
        order = list(range(len(rendered)))
        random.Random(settings.split_seed if seed is None else seed).shuffle(order)
        n_eval = max(1, round(len(rendered) * settings.eval_ratio))
        held = set(order[:n_eval])
        train = [r for i, r in enumerate(rendered) if i not in held]
        evaluation = [r for i, r in enumerate(rendered) if i in held]
        report.eval_source = f"{settings.eval_ratio:.0%} held out, seed {settings.split_seed}"
    report.train_rows, report.eval_rows = len(train), len(evaluation)
    if tokenizer is not None:
        report.shared_prefix = shared_prefix_length([(r.input_ids, r.labels) for r in train])
    return PreparedData(train, evaluation, report)


def check_data(settings: DataSettings, tokenizer=None, max_length: int = 1024) -> DataReport:
    """The doctor: a full report of the data (raises DataError only when nothing is usable)."""
    return prepare(settings, tokenizer, max_length).report


def samples_for_display(settings: DataSettings, limit: int = 5) -> list[Sample]:
    """The first few usable samples, for showing one rendered."""
    return collect_samples(settings.path, settings, DataReport(source=settings.path), limit)[:limit]

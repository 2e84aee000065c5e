"""The doctor's summary as the Data mode shows it."""

from smolora_tui.widgets.data_text import report_histogram, report_summary

REPORT = {"rows_read": 120, "rows_kept": 118, "shape": "chat", "train_rows": 106, "eval_rows": 12,
          "duplicates": 1, "problems": [{"file": "d.jsonl", "line": 3, "kind": "malformed_json", "reason": "x"}],
          "tokens": {"min": 20, "median": 55, "p95": 90, "max": 1200, "per_epoch": 7000, "trained_per_epoch": 2000},
          "truncated": 0, "histogram": [[20, 40, 30], [40, 80, 80], [80, 1200, 8]]}


def test_the_histogram_fits_the_width_it_is_given():
    for width in (40, 47, 60, 88, 200):
        lines = report_histogram(REPORT, width).splitlines()
        bars = [line for line in lines if "█" in line]
        assert len(bars) == 3 and all(len(line) <= max(width, 30) for line in bars), width
    longest = max(len(line) for line in report_histogram(REPORT, 47).splitlines() if "█" in line)
    assert longest > 40  # the bars use the room there is
    assert "118 usable of 120 rows (chat)" in report_summary(REPORT)
    assert "█" not in report_summary(REPORT)  # the summary is what to act on; the bars come after the problems


def test_a_bucket_of_one_length_is_labelled_with_that_length():
    lines = report_histogram({"histogram": [[43, 43, 6], [44, 44, 0], [45, 47, 19]]}, 60).splitlines()
    assert [line.split()[0] for line in lines] == ["43", "44", "45-47"]


def test_an_unusable_report_says_why_first():
    lines = report_summary({**REPORT, "error": "no usable rows"}).splitlines()
    assert lines[0] == "cannot train on this data: no usable rows"


def test_truncated_samples_come_with_what_to_change():
    advice = "each keeps its first 1024 tokens only; data.chunk_size = 1024 splits long texts"
    shown = report_summary({**REPORT, "truncated": 2, "length_advice": advice})
    assert f"2 truncated: {advice}" in shown.splitlines()
    assert "truncated:" not in report_summary(REPORT)

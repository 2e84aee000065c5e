"""The answers panel: what the model says to each eval prompt, as the base, at the eval before, and now.

One prompt at a time: its text and reference, then the base model's answer, the
previous eval's and the chosen eval's (the newest unless paged back), each with
its checks (✓ passed, ✗ failed, named) and whether it changed since the answer
above it. `[` `]` page through prompts, `,` `.` through evals (the train pane's keys).
"""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from smolora_engine import events as ev

from ..run_follow import RunHistory

NO_SAMPLES = ("No answers yet. At each eval the worker answers the eval prompts (eval.prompts, or the eval "
              "split's first eval.samples rows) and checks them (eval.checks); they show here.")


def verdict(answer: dict) -> Text:
    checks = answer.get("checks") or []
    if not checks:
        return Text("no checks", style="dim")
    failed = [c["check"] for c in checks if not c.get("passed")]
    if not failed:
        return Text(f"✓ {len(checks)} check(s) passed", style="green")
    return Text("✗ failed: " + ", ".join(failed), style="bold red")


def pass_rate_text(samples: ev.Samples) -> str:
    if samples.pass_rate is None:
        return "no checks"
    passed = sum(1 for a in samples.answers if a.get("passed"))
    return f"pass rate {samples.pass_rate:.0%} ({passed}/{samples.checked})"


class SamplesPanel(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    SamplesPanel { height: 3fr; min-height: 7; padding: 0 1; }
    SamplesPanel #samples-text { height: auto; }
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.prompt = 0  # index of the prompt shown
        self.eval_index: int | None = None  # index into the run's evals; None: the newest
        self._history: RunHistory | None = None

    def compose(self):
        yield Static(NO_SAMPLES, id="samples-text")

    def page_prompt(self, delta: int) -> None:
        count = self._prompt_count()
        if count:
            self.prompt = (self.prompt + delta) % count
            self.show(self._history)

    def page_eval(self, delta: int) -> None:
        history = self._history
        if history is None or not history.samples:
            return
        last = len(history.samples) - 1
        current = last if self.eval_index is None else self.eval_index
        target = max(0, min(last, current + delta))
        self.eval_index = None if target == last else target
        self.show(history)

    def _prompt_count(self, history: RunHistory | None = None) -> int:
        history = history or self._history
        if history is None:
            return 0
        latest = history.samples[-1] if history.samples else history.base_samples
        return len(latest.answers) if latest else 0

    def show(self, history: RunHistory | None) -> None:
        """Draw the prompt shown from a run's history (None: nothing to show)."""
        if history is not self._history and (history is None or self._history is None
                                             or history.run_id != self._history.run_id):
            self.prompt, self.eval_index = 0, None  # another run: from its first prompt, newest eval
        self._history = history
        self.query_one("#samples-text", Static).update(self.render_text(history))

    def render_text(self, history: RunHistory | None) -> Text:
        if history is None or (not history.samples and history.base_samples is None):
            return Text(NO_SAMPLES, style="italic")
        evals = history.samples
        count = self._prompt_count(history)
        self.prompt = min(self.prompt, max(count - 1, 0))
        chosen = None
        if evals:
            index = len(evals) - 1 if self.eval_index is None else min(self.eval_index, len(evals) - 1)
            chosen = evals[index]
        head = Text(f"prompt {self.prompt + 1}/{count}", style="bold")
        if chosen is not None:
            head.append(f" · eval at step {chosen.step} ({index + 1}/{len(evals)})"
                        + ("" if self.eval_index is None else ", paged back"))
            head.append(f" · {pass_rate_text(chosen)}")
            if chosen.cut_short:
                head.append(" · cut short by eval.time_limit_s", style="yellow")
        rows: list[tuple[str, ev.Samples]] = []
        if history.base_samples is not None:
            rows.append(("base", history.base_samples))
        if chosen is not None:
            if index > 0:
                rows.append((f"step {evals[index - 1].step}", evals[index - 1]))
            rows.append((f"step {chosen.step}", chosen))
        out = [head]
        first = next((s.answers[self.prompt] for _n, s in rows if self.prompt < len(s.answers)), None)
        if first is not None:
            out.append(Text("> " + first.get("prompt", ""), style="bold cyan"))
            if first.get("reference"):
                out.append(Text("reference: " + first["reference"], style="dim"))
        above: str | None = None
        for name, samples in rows:
            if self.prompt >= len(samples.answers):
                continue
            answer = samples.answers[self.prompt]
            text = answer.get("answer", "")
            line = Text(f"{name}: ", style="bold")
            line.append_text(verdict(answer))
            if above is not None:
                line.append("  changed" if text != above else "  unchanged",
                            style="magenta" if text != above else "dim")
            out.append(line)
            out.append(Text("  " + (text.replace("\n", "\n  ") or "(empty)"), style="" if text else "dim italic"))
            above = text
        out.append(Text("[ ] another prompt · , . another eval · a: the chart", style="dim"))
        return Text("\n").join(out)

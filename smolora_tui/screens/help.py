"""F1 / ?: what the current screen does, and the keys that work on it now."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = {
    "picker": """# Projects
Each project is one TOML file (a base model, a dataset, LoRA and training settings) plus its runs.
Pick one and press **Enter** to open it; **n** creates one, **r** renames, **c** duplicates and
**d** (or Delete) removes it, after asking. A project whose file cannot be read is listed with its error;
fix the file and refresh.""",
    "data": """# Data
The tree shows only files smolora reads (text folders, JSONL, JSON, CSV/TSV, Parquet). Selecting a
file previews its first rows and the detected shape (plain text, instruction, prompt/completion, chat).
**u** makes the selected file the project's training data. **c** runs the data doctor in the
background: counts, a token-length histogram and every problem with its file and line; select a
problem to see the raw row. Nothing is dropped silently.""",
    "settings": """# Settings
Every field is checked as you type, with the same messages as `smolora config`. Red fields block
saving; **Ctrl+S** writes the project file atomically, and leaving with unsaved changes asks first.
Apply a preset (quick CPU test, balanced, quality) from the list at the top or the palette, then
review and save.""",
    "train": """# Train
**s** starts a run with the saved settings in a background worker: it keeps training if you quit or
your SSH link drops. Open the project again (`smolora-tui --project NAME`) to see its whole history.
**x** stops the run after saving a checkpoint; **r** resumes a stopped or crashed run from its last
complete checkpoint. The chart shows train loss (line) and eval loss (points): **m** toggles
smoothing, **l** a log scale, and **o** overlays another run to compare. A worker that dies shows as
*crashed* within seconds; errors show with the engine's advice (for example what to lower after
running out of memory).

**a** shows what the model answers to the eval prompts (`[eval]` settings): the base model's answer,
the eval before and the current one, each with its checks (✓, or ✗ and the failed check) and whether
it changed. **[** **]** page through prompts, **,** **.** through evals. The pass rate of the checks is
the chart's right-hand curve. When a run ends the app rings the bell and posts a notice.

**c** compares every run of the project: the settings that differ, each run's final loss, best eval
loss, pass rate, tokens/s, wall time and status, and their loss curves overlaid (**space** leaves a run
out, **e** draws eval loss). **q** opens the queue (all projects): **a** queues this project's saved
settings with key=value changes, **w** a sweep (`lora.r=8,16 training.learning_rate=1e-4,5e-4` queues
every combination), **k**/**j** move an entry, **d** removes it, **t** retries a failed or crashed one
(resumed from its checkpoint), **g** starts the runner in the background and **x** stops it. The runner
trains the entries one after another, goes on after a failure and survives quitting and SSH drops.""",
    "merge": """# Merge and export
Pick a run's final adapter or one of its checkpoints. **m** merges it into a standard Hugging Face
model folder and checks the merged model's logits against base + adapter. **e** exports a GGUF file
(for llama.cpp) and an Ollama Modelfile, merging first if needed, and checks the GGUF against the
merged model. **c** copies the newest output path.""",
    "chat": """# Chat
Talk to the base model, the tuned model (base + adapter) or the merged folder. Answers stream in;
**Esc** stops one. **Ctrl+T** compares: the same prompt and seed go to the base and the tuned model,
answers side by side. Sampling settings are in the side panel (temperature 0 is greedy). Every
conversation is saved in the project and can be reopened from the list; **Ctrl+N** starts a new one,
**Ctrl+R** restarts the model worker after a new run or merge.""",
}


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80%; max-width: 96; height: 80%; border: thick $primary;
                                  background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close", id="help.close")]

    def __init__(self, topic: str, keys: list[tuple[str, str]]):
        super().__init__()
        self.topic, self.keys = topic, keys

    def compose(self) -> ComposeResult:
        text = HELP.get(self.topic, HELP["picker"])
        if self.keys:
            text += "\n\n## Keys here\n\n| key | does |\n|---|---|\n" + "\n".join(
                f"| `{key}` | {description} |" for key, description in self.keys)
        text += "\n\n`Ctrl+P` opens the command palette; `Ctrl+Q` quits (training keeps going). Esc closes this."
        with VerticalScroll():
            yield Markdown(text)

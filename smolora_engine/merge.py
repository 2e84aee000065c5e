"""Merge: the adapter folded into the base weights, written as a standard Hugging Face model folder.

After writing, the merge checks itself: the logits of the merged model (reloaded
from disk with plain `AutoModelForCausalLM.from_pretrained`) and of base + adapter
on a few fixed prompts must agree; the max abs difference is reported.

Memory: one copy of the base weights. The expected logits are kept, the merged
model is written and released, and only then is the written folder loaded back.
"""

from __future__ import annotations

import gc
import json
import shutil
from pathlib import Path
from typing import Callable

from . import events as ev
from .fsutil import give_normal_modes

CHECK_PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time")
REPORT_FILE = "smolora-merge.json"
FP32_TOLERANCE = 1e-3

Emit = Callable[[ev.Event], object]


def _logits(model, tokenizer, prompts=CHECK_PROMPTS):
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        return [model(**tokenizer(p, return_tensors="pt").to(device)).logits.float().cpu() for p in prompts]


def _progress(emit: Emit | None, message: str, fraction: float) -> None:
    if emit is not None:
        emit(ev.Progress(stage="merge", message=message, fraction=fraction))


def merge_adapter(base: str, adapter: Path, out: Path, trust_remote_code: bool = False,
                  emit: Emit | None = None) -> dict:
    """Write base + adapter merged into `out`; return the check's figures."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from .models import load_model

    _progress(emit, f"loading the base model {base}", 0.05)
    model, tokenizer = load_model(base, trust_remote_code=trust_remote_code)
    model.eval()
    _progress(emit, f"loading the adapter {adapter}", 0.25)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    peft_model.eval()
    expected = _logits(peft_model, tokenizer)
    _progress(emit, "merging the adapter into the weights", 0.4)
    merged = peft_model.merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _progress(emit, f"writing {out}", 0.55)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if merged.generation_config is not None:
        merged.generation_config.save_pretrained(tmp)
    give_normal_modes(tmp)  # a standard folder for other tools and users: no private 0600 weights
    dtype = str(next(merged.parameters()).dtype).removeprefix("torch.")
    del merged, peft_model, model
    gc.collect()
    _progress(emit, "checking the merged model against base + adapter", 0.75)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp, local_files_only=True,
                                                    trust_remote_code=trust_remote_code).eval()
    got = _logits(reloaded, tokenizer)
    del reloaded
    diff = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    report = {"path": str(out), "base": base, "adapter": str(adapter), "dtype": dtype,
              "max_abs_logit_diff": diff, "prompts": len(CHECK_PROMPTS),
              "ok": diff <= FP32_TOLERANCE if dtype == "float32" else diff <= 0.1}
    (tmp / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    _progress(emit, "merged", 1.0)
    return report


def merged_dir(run_folder: Path, checkpoint: int | None) -> Path:
    return run_folder / ("merged" if checkpoint is None else f"merged-step-{checkpoint}")


def merge_run(project: str, run_id: str | None = None, checkpoint: int | None = None,
              emit: Emit | None = None) -> dict:
    """Merge a run's adapter (or one of its checkpoints) into `runs/<id>/merged[-step-N]/`."""
    from .runs import resolve_adapter, run_base_model, run_dir

    run_id, adapter = resolve_adapter(project, run_id, checkpoint)
    base, trust = run_base_model(project, run_id)
    report = merge_adapter(base, adapter, merged_dir(run_dir(project, run_id), checkpoint), trust, emit)
    report["run_id"] = run_id
    report["checkpoint"] = checkpoint
    return report


def read_merge_report(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None

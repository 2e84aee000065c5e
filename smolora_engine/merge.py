"""Merge: the adapter folded into the base weights, written as a standard Hugging Face model folder.

After writing, the merge checks itself: the logits of the merged model and of
base + adapter on a few fixed prompts must agree (max abs difference reported).
"""

from __future__ import annotations

from pathlib import Path

CHECK_PROMPTS = ("The capital of France is", "def fibonacci(n):", "Once upon a time")


def _logits(model, tokenizer, prompts=CHECK_PROMPTS):
    import torch

    with torch.no_grad():
        return [model(**tokenizer(p, return_tensors="pt")).logits.float() for p in prompts]


def merge_adapter(base: str, adapter: Path, out: Path, trust_remote_code: bool = False) -> dict:
    """Write base + adapter merged into `out`; return the check's figures."""
    import shutil

    from peft import PeftModel

    from .models import load_model

    model, tokenizer = load_model(base, trust_remote_code=trust_remote_code)
    model.eval()
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    peft_model.eval()
    expected = _logits(peft_model, tokenizer)
    merged = peft_model.merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if merged.generation_config is not None:
        merged.generation_config.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    del merged, peft_model, model
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    got = _logits(reloaded, tokenizer)
    diff = max(float((a - b).abs().max()) for a, b in zip(expected, got))
    return {"path": str(out), "max_abs_logit_diff": diff, "prompts": len(CHECK_PROMPTS)}

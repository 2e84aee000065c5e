"""Checking an export against the merged model it came from.

Next-token predictions on chat-formatted prompts are compared position by position:
- with transformers' GGUF loader, for the families it reads;
- with llama.cpp itself when llama-cpp-python is installed, plus one chat turn through
  the GGUF's own template: does it give the merged model's greedy answer, and does it
  stop at the end of the turn?
Every file is also compared with the merged model rounded as the file stores each weight (types
written here: rounded the same way in numpy; k-quants: the file's own blocks, dequantized): exact
up to float noise at every type, so it catches a wrong conversion even in 4 bits. Against the unrounded model a quantized file is checked for sane
agreement, not exactness (quants.KL_LIMITS).
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path

CHECK_MESSAGES = (
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "user", "content": "List three prime numbers."}],
    [{"role": "user", "content": "Explain what a LoRA adapter is in one sentence."}],
)
CHAT_TOKENS = 32


@dataclass
class Reference:
    """The merged model's log-probabilities on the check prompts, and its greedy chat answer; and the same
    model with every weight rounded as the file stores it (`stored`)."""
    prompts: list[str]
    ids: list[list[int]]
    logprobs: list  # one (positions, vocab) tensor per prompt
    answer_ids: list[int]
    answer_stopped: bool
    stored: list | None = None


def _round_as_stored(model, quant: str, gguf_arch: str) -> None:
    """Each weight as the GGUF stores it: through f16, or quantized and dequantized in the same blocks
    (row permutations commute with that, since the blocks run along rows)."""
    import gguf
    import torch

    from .quants import tensor_type

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[gguf_arch.upper()], model.config.num_hidden_layers)
    with torch.no_grad():
        for name, param in model.named_parameters():
            gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
            qtype = tensor_type(quant, gguf_name or "", tuple(param.shape))
            data = param.detach().float().numpy()
            if qtype == gguf.GGMLQuantizationType.F16:
                data = data.astype("float16").astype("float32")
            elif qtype != gguf.GGMLQuantizationType.F32:
                data = gguf.quants.dequantize(gguf.quants.quantize(data, qtype), qtype)
            param.copy_(torch.from_numpy(data.reshape(param.shape)))


def _read_as_stored(model, gguf_path: Path, family) -> None:
    """Each weight as llama.cpp's quantizer stored it in the file (the k-quants): read and dequantized,
    q/k rows put back in the Hugging Face order, norms without the family's offset."""
    import gguf
    import numpy as np
    import torch

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[family.gguf_arch.upper()], model.config.num_hidden_layers)
    stored = {t.name: t for t in gguf.GGUFReader(gguf_path).tensors}
    heads, kv_heads = model.config.num_attention_heads, model.config.num_key_value_heads
    with torch.no_grad():
        for name, param in model.named_parameters():
            tensor = stored.get(names.get_name(name, try_suffixes=(".weight", ".bias")) or "")
            if tensor is None:
                continue  # the tied output head, read through the embeddings
            data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            data = data.reshape(param.shape)
            if name.endswith("norm.weight"):
                data = data - family.norm_offset
            if family.permute_qk and name.endswith(("q_proj.weight", "k_proj.weight")):
                n = heads if name.endswith("q_proj.weight") else kv_heads
                data = data.reshape(n, data.shape[0] // n // 2, 2, *data.shape[1:]).swapaxes(1, 2).reshape(param.shape)
            param.copy_(torch.from_numpy(np.ascontiguousarray(data)))


def reference(merged: Path, tokenizer, stop_ids: list[int], quant: str, family, gguf_path: Path) -> Reference:
    """The merged model's predictions, and the same model rounded as the file at `gguf_path` stores it
    (`family`: its families.Family)."""
    import torch
    from transformers import AutoModelForCausalLM

    from .quants import NUMPY_TYPES

    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               if tokenizer.chat_template else m[0]["content"] for m in CHECK_MESSAGES]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    model = AutoModelForCausalLM.from_pretrained(merged, local_files_only=True, dtype=torch.float32).eval()

    def logprobs_of(m):
        return [torch.log_softmax(m(input_ids=torch.tensor([i])).logits[0].float(), -1) for i in ids]

    with torch.no_grad():
        logprobs = logprobs_of(model)
        prompt = torch.tensor([ids[0]])
        out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=CHAT_TOKENS,
                             do_sample=False, eos_token_id=stop_ids or None, pad_token_id=stop_ids[0] if stop_ids
                             else None)
        if quant in NUMPY_TYPES:
            _round_as_stored(model, quant, family.gguf_arch)
        else:
            _read_as_stored(model, gguf_path, family)
        stored = logprobs_of(model)
    answer = out[0, prompt.shape[1]:].tolist()
    stopped = bool(answer) and answer[-1] in stop_ids
    del model
    gc.collect()
    return Reference(prompts, ids, logprobs, answer[:-1] if stopped else answer, stopped, stored)


def _agreement(expected: list, got: list) -> dict:
    positions = sum(len(r) for r in expected)
    agree = sum(int((r.argmax(-1) == g.argmax(-1)).sum()) for r, g in zip(expected, got))
    last = sum(int(r[-1].argmax() == g[-1].argmax()) for r, g in zip(expected, got))
    diff = max(float((r - g).abs().max()) for r, g in zip(expected, got))
    # KL(expected || got) per position, averaged: how far the whole next-token distribution moved
    kl = sum(float((r.exp() * (r - g)).sum()) for r, g in zip(expected, got)) / positions
    return {"positions": positions, "agreement": agree / positions, "next_token_agreement": f"{last}/{len(got)}",
            "max_abs_logprob_diff": diff, "mean_kl": kl}


def compare(ref: Reference, got: list) -> dict:
    """Agreement with the merged model; and, where the file's rounding is known, with the merged model
    rounded the same way (`as_stored`: a faithful conversion matches it up to float noise at any type)."""
    result = _agreement(ref.logprobs, got)
    if ref.stored is not None:
        result["as_stored"] = _agreement(ref.stored, got)
    return result


def with_transformers(gguf_path: Path, ref: Reference, config, family) -> dict:
    """Load the GGUF back with transformers and compare its predictions with the merged model's
    (`config`: the merged model's; `family`: its families.Family)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .families import rope_scaling

    gguf_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    same_tokens = all(gguf_tokenizer(p, add_special_tokens=False)["input_ids"] == i
                      for p, i in zip(ref.prompts, ref.ids))
    rope_kind = rope_scaling(config)[0]
    unread = [what for what, missing in (
        (f"rope scaling {rope_kind}", rope_kind != "default"),
        ("partial rotary", getattr(config, "partial_rotary_factor", 1.0) != 1.0),
        (family.transformers_misses, bool(family.transformers_misses))) if missing]
    # Its GGUF reader ignores rope_freqs, rope factors, partial rotary and Gemma 3's layer pattern: then the file's weights and
    # tokenizer are checked under the merged model's configuration (llama.cpp reads them all from the file).
    extra = {"config": config} if unread else {}
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                  dtype=torch.float32, **extra).eval()
    with torch.no_grad():
        got = [torch.log_softmax(loaded(input_ids=torch.tensor([i])).logits[0].float(), -1) for i in ref.ids]
    del loaded
    gc.collect()
    result = {**compare(ref, got), "same_tokenization": same_tokens,
              "chat_template": bool(getattr(gguf_tokenizer, "chat_template", None))}
    if extra:
        result["note"] = (f"{' and '.join(unread)} taken from the merged model's config: transformers does not "
                          "read that from GGUF (llama.cpp does)")
    return result


def with_llamacpp(gguf_path: Path, ref: Reference) -> dict:
    """Load the GGUF in llama.cpp: predictions on the same ids, its own tokenization, and one chat turn
    through the file's own template (greedy), compared with the merged model's answer."""
    import numpy as np
    import torch
    from llama_cpp import Llama

    longest = max(len(i) for i in ref.ids) + CHAT_TOKENS + 64
    llm = Llama(model_path=str(gguf_path), n_ctx=max(256, longest), logits_all=True, verbose=False,
                n_threads=os.cpu_count() or 1, seed=0)
    got = []
    for ids in ref.ids:
        llm.reset()
        llm.eval(ids)
        scores = np.array(llm.scores[:len(ids)], dtype=np.float32)
        got.append(torch.log_softmax(torch.from_numpy(scores), -1))
    same_tokens = all(llm.tokenize(p.encode(), add_bos=False, special=True) == i
                      for p, i in zip(ref.prompts, ref.ids))
    llm.reset()
    reply = llm.create_chat_completion(messages=list(CHECK_MESSAGES[0]), max_tokens=CHAT_TOKENS, temperature=0.0,
                                       top_k=1, seed=0)
    choice = reply["choices"][0]
    text = choice["message"]["content"] or ""
    answer = llm.detokenize(ref.answer_ids).decode("utf-8", errors="replace") if ref.answer_ids else ""
    stopped = choice.get("finish_reason") == "stop"
    del llm
    gc.collect()
    return {**compare(ref, got), "same_tokenization": same_tokens,
            "chat": {"stopped_at_end_of_turn": stopped, "merged_model_stopped": ref.answer_stopped,
                     "same_answer": text.strip() == answer.strip(), "answer": text[:200]}}

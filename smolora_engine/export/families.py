"""What each model family needs in a GGUF file, one place for all of them.

The facts come from llama.cpp's own converter (convert_hf_to_gguf.py): the GGUF
architecture name, whether q/k rows are permuted into llama.cpp's rotary order,
the keys a family adds (Granite's scales, Phi-3's partial rotary and sliding
window, Gemma 3's sliding window and its norms stored as 1 + weight), the extra tensors its rope scaling needs (Llama 3's `rope_freqs`,
Phi-3's long/short factors), and the BPE pre-tokenizer llama.cpp should use.

The pre-tokenizer is found the way llama.cpp's converter finds it: the tokenizer
encodes a fixed text and the hash of the ids names a known pre-tokenizer. A
tokenizer not in the table falls back to the family's usual one, and the export
report says which way it was chosen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Callable

from .errors import ExportError


@dataclass(frozen=True)
class Family:
    label: str  # as the README's models table and the export report name it
    gguf_arch: str  # the name in gguf.MODEL_ARCH_NAMES
    permute_qk: bool  # llama.cpp expects q/k rows in its own rotary order for llama-style models
    pre_tokenizer: str  # tokenizer.ggml.pre when llama.cpp's hash table does not know the tokenizer
    metadata: Callable[[object, object], None] | None = None  # family keys: (writer, config)
    # Families transformers' GGUF loader reads back (for the check); llama.cpp reads them all.
    transformers_reads: bool = True
    rope_scalings: tuple[str, ...] = ("default", "llama3")
    end_of_turn: tuple[str, ...] = field(default=())  # tokens that end an assistant turn
    refuse: Callable[[object], str | None] | None = None  # why a model of the family cannot be written
    norm_offset: float = 0.0  # added to every norm weight (Gemma computes x * (1 + weight))
    transformers_misses: str = ""  # what transformers' GGUF reader does not read back (the check then
    # takes it from the merged model's config)


def _phi3(writer, config) -> None:
    """Phi-3 / Phi-4-mini: the original context for longrope, a sliding window (0: none)."""
    original = getattr(config, "original_max_position_embeddings", None) or config.max_position_embeddings
    writer.add_rope_scaling_orig_ctx_len(int(original))
    writer.add_sliding_window(int(getattr(config, "sliding_window", None) or 0))


def _smollm3_refuse(config) -> str | None:
    """llama.cpp skips rope on every 4th layer of a smollm3 file (a constant, no GGUF key says otherwise)."""
    layers = list(getattr(config, "no_rope_layers", None) or [])
    expected = [int((i + 1) % 4 != 0) for i in range(config.num_hidden_layers)]
    if layers and layers != expected:
        return ("its layers without rope are not every 4th one, and llama.cpp's smollm3 assumes every 4th "
                f"(no_rope_layers = {layers})")
    return None


def _granite(writer, config) -> None:
    """Granite scales its embeddings, residuals, attention and logits by constants of its config."""
    writer.add_embedding_scale(float(config.embedding_multiplier))
    writer.add_residual_scale(float(config.residual_multiplier))
    writer.add_attention_scale(float(config.attention_multiplier))
    writer.add_logit_scale(float(config.logits_scaling))


GEMMA3_PATTERN = 6  # llama.cpp's gemma3: every 6th layer attends globally, the others in a sliding window
GEMMA3_LOCAL_ROPE = 10000.0  # and the sliding layers' rope base, both constants there


def _gemma3(writer, config) -> None:
    """Gemma 3: the sliding window, and the global layers' linear rope scaling (4B and up)."""
    import gguf

    writer.add_sliding_window(int(getattr(config, "sliding_window", None) or 0))
    kind, rope = rope_scaling(config)
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))


def _gemma3_refuse(config) -> str | None:
    """What llama.cpp's gemma3 hard-codes and a model could differ in."""
    layers = config.num_hidden_layers
    pattern = list(getattr(config, "layer_types", None) or [])
    expected = ["full_attention" if (i + 1) % GEMMA3_PATTERN == 0 else "sliding_attention" for i in range(layers)]
    if pattern and getattr(config, "sliding_window", None) and pattern != expected:
        return f"its sliding-window layers are not 5 of every 6, which llama.cpp's gemma3 assumes ({pattern})"
    rope = dict(getattr(config, "rope_parameters", None) or {})
    local = rope.get("sliding_attention", {"rope_type": "default", "rope_theta": GEMMA3_LOCAL_ROPE})
    if local.get("rope_type", "default") != "default" or float(local.get("rope_theta", 0)) != GEMMA3_LOCAL_ROPE:
        return f"its sliding layers' rope ({local}) is not llama.cpp's fixed default with base 10000"
    # llama.cpp scales attention by 1/sqrt(head_dim), or 1/sqrt(hidden / heads) for the 62-layer 27B
    scale = config.hidden_size // config.num_attention_heads if layers == 62 else head_dim(config)
    if getattr(config, "query_pre_attn_scalar", scale) != scale:
        return f"its query_pre_attn_scalar ({config.query_pre_attn_scalar}) is not {scale}, which llama.cpp assumes"
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "attn_logit_softcapping", None):
        return "it caps its logits (softcapping), which llama.cpp's gemma3 does not"
    return None


FAMILIES: dict[str, Family] = {
    "LlamaForCausalLM": Family("Llama 3.x, SmolLM2", "llama", True, "default",
                               end_of_turn=("<|eot_id|>", "<|im_end|>", "<|eom_id|>")),
    "MistralForCausalLM": Family("Mistral", "llama", True, "default", end_of_turn=("</s>",)),
    "Qwen2ForCausalLM": Family("Qwen2, Qwen2.5", "qwen2", False, "qwen2", end_of_turn=("<|im_end|>",)),
    "Qwen3ForCausalLM": Family("Qwen3", "qwen3", False, "qwen2", end_of_turn=("<|im_end|>",)),
    "SmolLM3ForCausalLM": Family("SmolLM3", "smollm3", True, "llama-bpe", transformers_reads=False,
                                 end_of_turn=("<|im_end|>", "<|eot_id|>"), refuse=_smollm3_refuse),
    "Phi3ForCausalLM": Family("Phi-3, Phi-4-mini", "phi3", False, "gpt-4o", _phi3,
                              rope_scalings=("default", "longrope", "su"), end_of_turn=("<|end|>",)),
    "Gemma3ForCausalLM": Family("Gemma 3", "gemma3", False, "default", _gemma3, rope_scalings=("default", "linear"),
                                end_of_turn=("<end_of_turn>",), refuse=_gemma3_refuse, norm_offset=1.0,
                                transformers_misses="Gemma 3's sliding-window layers and attention scale"),
    "GraniteForCausalLM": Family("Granite", "granite", True, "default", _granite, transformers_reads=False,
                                 end_of_turn=("<|end_of_text|>",)),
}

# llama.cpp's fixed text and the hashes of the known pre-tokenizers' ids for it (convert_hf_to_gguf.py)
CHECK_TEXT = ("\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) "
              "✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 "
              "?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? "
              "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL")
KNOWN_PRE_TOKENIZERS = {
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # Llama 3
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen 1.5 to 3
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # SmolLM, SmolLM2
    "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": "gpt-4o",  # Phi-4-mini
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",  # Mistral Nemo
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
    "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": "refact",
    "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
}


def family_of(config) -> tuple[str, Family]:
    architecture = (getattr(config, "architectures", None) or ["?"])[0]
    family = FAMILIES.get(architecture)
    if family is None:
        raise ExportError(f"GGUF export supports {', '.join(FAMILIES)}; this model is {architecture}. "
                          "Use the merged Hugging Face folder instead (llama.cpp's own converter may support it)")
    reason = family.refuse(config) if family.refuse else None
    if reason:
        raise ExportError(f"this {family.label} model cannot be written as GGUF: {reason}")
    return architecture, family


def pre_tokenizer(tokenizer, family: Family) -> tuple[str, str]:
    """(tokenizer.ggml.pre, how it was chosen)."""
    ids = tokenizer.encode(CHECK_TEXT)
    known = KNOWN_PRE_TOKENIZERS.get(sha256(str(ids).encode()).hexdigest())
    if known is not None:
        return known, "llama.cpp's hash of the tokenizer"
    return family.pre_tokenizer, f"not in llama.cpp's table: the {family.label} default"


def rope_scaling(config) -> tuple[str, dict]:
    """The rope type and its parameters (of the global layers, where a model has several: Gemma 3)."""
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    rope = dict(rope.get("full_attention", rope))
    return str(rope.get("rope_type", rope.get("type", "default")) or "default").lower(), rope


def rope_theta(config) -> float:
    _kind, rope = rope_scaling(config)
    return float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0)))


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def extra_tensors(config, family: Family):
    """(GGUF name, float32 array) of the tensors llama.cpp needs for the model's rope scaling."""
    import numpy as np

    kind, rope = rope_scaling(config)
    if kind not in family.rope_scalings:
        raise ExportError(f"rope scaling {kind!r} of a {family.label} model is not supported by this exporter")
    if kind == "llama3":  # Llama 3.1+: per-frequency factors, as llama.cpp's converter computes them
        dim = head_dim(config)
        freqs = 1.0 / (rope_theta(config) ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
        factor = rope.get("factor", 8.0)
        low, high = rope.get("low_freq_factor", 1.0), rope.get("high_freq_factor", 4.0)
        old = rope.get("original_max_position_embeddings", 8192)
        low_wavelen, high_wavelen = old / low, old / high
        factors = []
        for freq in freqs:
            wavelen = 2 * math.pi / freq
            if wavelen < high_wavelen:
                factors.append(1.0)
            elif wavelen > low_wavelen:
                factors.append(factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        yield "rope_freqs.weight", np.array(factors, dtype=np.float32)
    elif kind in ("longrope", "su"):  # Phi-3 / Phi-4-mini
        long, short = rope.get("long_factor"), rope.get("short_factor")
        rope_dims = int(getattr(config, "partial_rotary_factor", 1.0) * config.hidden_size) // \
            config.num_attention_heads
        if long is None or short is None or len(long) != len(short) or len(long) != rope_dims // 2:
            raise ExportError("the model's longrope factors do not match its rotary dimensions")
        yield "rope_factors_long.weight", np.array(long, dtype=np.float32)
        yield "rope_factors_short.weight", np.array(short, dtype=np.float32)


def rope_attention_factor(config) -> float | None:
    """Phi-3's longrope attention factor (llama.cpp's converter formula), or None."""
    kind, _rope = rope_scaling(config)
    if kind not in ("longrope", "su"):
        return None
    original = getattr(config, "original_max_position_embeddings", None) or config.max_position_embeddings
    scale = config.max_position_embeddings / original
    return math.sqrt(1 + math.log(scale) / math.log(original)) if scale > 1.0 else 1.0


def permute(weights, heads: int):
    """HF rotary layout -> llama.cpp's (as its converter does)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def end_of_turn_ids(tokenizer, family: Family | None) -> list[int]:
    """The ids of the family's end-of-turn tokens this tokenizer has, the eos first."""
    vocab = tokenizer.get_vocab()
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for token in family.end_of_turn if family else ():
        if token in vocab and vocab[token] not in ids:
            ids.append(vocab[token])
    return ids


def stop_token_ids(model, tokenizer) -> list[int]:
    """What ends an answer when generating: the model's generation config's eos ids, the tokenizer's eos
    and its family's end-of-turn tokens (Llama 3's <|eot_id|>, Phi's <|end|>, Gemma's <end_of_turn>)."""
    architecture = (getattr(model.config, "architectures", None) or ["?"])[0]
    ids = end_of_turn_ids(tokenizer, FAMILIES.get(architecture))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token_id in configured if isinstance(configured, list) else [configured]:
        if token_id is not None and token_id not in ids:
            ids.append(int(token_id))
    return ids

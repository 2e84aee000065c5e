"""Writing a merged Hugging Face folder as one GGUF file, family by family (families.py).

The file is written with the `gguf` package's writer and tensor-name maps (the same
ones llama.cpp's converter uses); nothing is fetched at run time. The tokenizer
(vocab.py) and the chat template go inside the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..fsutil import normal_file_mode
from . import families
from .errors import ExportError
from .families import Family
from .quants import NUMPY_TYPES, file_type, tensor_type
from .vocab import write_vocab


def tensors(folder: Path):
    """(name, float32 numpy array) of every tensor in the folder's safetensors, one at a time."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{folder} holds no .safetensors weights: merge the run first (`smolora merge`)")
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name).float().numpy()


PHI3_NAMED = re.compile(r"phi-?3", re.IGNORECASE)
PHI3_TOKENS = ("</s>", "<unk>", "<s>", "<|endoftext|>")


def model_name(name: str, tokenizer) -> str:
    """general.name, as llama.cpp reads it: a name containing "phi3" or "phi-3" makes it look up Phi-3's
    four tokens by text when it loads the vocabulary, and abort when one is missing (a Phi-4-mini
    tokenizer, a folder someone named phi3-...); such a name is written with a space instead."""
    vocab = tokenizer.get_vocab()
    if PHI3_NAMED.search(name) and not all(token in vocab for token in PHI3_TOKENS):
        return PHI3_NAMED.sub(lambda m: m.group(0)[:3] + " 3", name)
    return name


def _hyperparameters(writer, config, family: Family) -> None:
    heads = config.num_attention_heads
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = families.head_dim(config)
    if head_dim != config.hidden_size // heads:  # Qwen3, Gemma: heads wider than hidden / heads
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(families.rope_theta(config))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_dimension_count(int(getattr(config, "partial_rotary_factor", 1.0) * head_dim))
    if family.metadata is not None:
        family.metadata(writer, config)
    attention_factor = families.rope_attention_factor(config)
    if attention_factor is not None:
        writer.add_rope_scaling_attn_factors(attention_factor)


def write_gguf(merged: Path, out: Path, quant: str = "q8_0", tokenizer=None) -> dict:
    """Write `merged` (a Hugging Face folder of a family in families.py) as one GGUF file at `out`,
    its tensors in `quant` (one of quants.NUMPY_TYPES)."""
    import gguf
    import numpy as np
    from transformers import AutoConfig, AutoTokenizer

    if quant not in NUMPY_TYPES:
        raise ExportError(f"{quant!r} is not written directly: choose one of {', '.join(NUMPY_TYPES)}")
    config = AutoConfig.from_pretrained(merged, local_files_only=True)
    architecture, family = families.family_of(config)
    extra = list(families.extra_tensors(config, family))  # refuses an unsupported rope scaling before writing
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(merged, local_files_only=True)
    heads, kv_heads, layers = config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers

    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), family.gguf_arch)
    name = getattr(config, "_name_or_path", "") or merged.name
    writer.add_name(model_name(Path(str(name)).name or "smolora-model", tokenizer))
    _hyperparameters(writer, config, family)
    writer.add_file_type(file_type(quant))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    report = write_vocab(writer, merged, tokenizer, config, family)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[family.gguf_arch.upper()], layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    count = 0
    for gguf_name, data in extra:
        writer.add_tensor(gguf_name, data)
        count += 1
    for hf_name, data in tensors(merged):
        if (tied and hf_name == "lm_head.weight") or hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"tensor {hf_name} has no GGUF name: this model's layout is not supported")
        if family.norm_offset and hf_name.endswith("norm.weight"):  # Gemma's norms scale by 1 + weight
            data = data + family.norm_offset
        if family.permute_qk and hf_name.endswith("q_proj.weight"):
            data = families.permute(data, heads)
        elif family.permute_qk and hf_name.endswith("k_proj.weight"):
            data = families.permute(data, kv_heads)
        qtype = tensor_type(quant, gguf_name, data.shape)
        if qtype == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        elif qtype == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.chmod(tmp, normal_file_mode())
    os.replace(tmp, out)
    return {"path": str(out), "quant": quant, "tensors": count, "bytes": out.stat().st_size,
            "architecture": architecture, "family": family.label, "gguf_architecture": family.gguf_arch,
            "context_length": config.max_position_embeddings, "tied_embeddings": tied, **report}

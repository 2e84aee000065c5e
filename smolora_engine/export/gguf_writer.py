"""Writing a merged Hugging Face folder as one GGUF file, family by family (families.py).

The file is written with the `gguf` package's writer and tensor-name maps (the same
ones llama.cpp's converter uses); nothing is fetched at run time. The tokenizer
(byte-level BPE) and the chat template go inside the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..fsutil import normal_file_mode
from . import families
from .errors import ExportError
from .families import Family
from .quants import NUMPY_TYPES, file_type, tensor_type


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


def vocabulary(folder: Path, vocab_size: int):
    """(tokens, token types, merges) from a byte-level BPE tokenizer.json."""
    import gguf

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no tokenizer.json (a fast tokenizer): GGUF export needs one")
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model", {})
    pre = data.get("pre_tokenizer") or {}
    kinds = {p.get("type") for p in pre.get("pretokenizers", [pre])} if pre else set()
    if model.get("type") != "BPE" or model.get("byte_fallback") or "Metaspace" in kinds:
        kind = "SentencePiece-style" if model.get("byte_fallback") or "Metaspace" in kinds else \
            model.get("type", "unknown")
        raise ExportError(f"the tokenizer is {kind}, not byte-level BPE: GGUF export supports byte-level BPE "
                          "tokenizers (SmolLM, Llama 3, Qwen, Phi-4, Mistral Nemo ...) for now; use llama.cpp's "
                          "convert_hf_to_gguf.py on the merged folder for SentencePiece models (Gemma, Mistral 7B)")
    vocab: dict[str, int] = model.get("vocab", {})
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    by_id = {i: t for t, i in vocab.items()}
    by_id.update({i: t["content"] for i, t in added.items()})
    size = max(vocab_size, max(by_id) + 1)
    tokens, types = [], []
    for i in range(size):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    return tokens, types, merges


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer adds BOS itself (so the GGUF tells llama.cpp to)."""
    return bool(getattr(tokenizer, "add_bos_token", False))


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


def _tokenizer(writer, merged: Path, tokenizer, config, family: Family) -> dict:
    tokens, types, merges = vocabulary(merged, config.vocab_size)
    pre, pre_source = families.pre_tokenizer(tokenizer, family)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    stops = families.end_of_turn_ids(tokenizer, family)
    if len(stops) > 1:  # the turn ends on a token other than eos (Llama 3's <|eot_id|>, Phi's <|end|>)
        writer.add_eot_token_id(stops[1])
    writer.add_add_bos_token(adds_bos(tokenizer))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    return {"pre_tokenizer": pre, "pre_tokenizer_from": pre_source, "vocab_size": len(tokens)}


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
    writer.add_name(Path(str(name)).name or "smolora-model")
    _hyperparameters(writer, config, family)
    writer.add_file_type(file_type(quant))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    report = _tokenizer(writer, merged, tokenizer, config, family)

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

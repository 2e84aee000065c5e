"""Export: a merged model as GGUF for llama.cpp and Ollama, with a Modelfile beside it.

The file is written with the `gguf` package's writer and tensor-name maps (the
same ones llama.cpp's converter uses); nothing is fetched at run time. The
tokenizer (byte-level BPE) and the chat template go inside the file. After
writing, the export checks itself: the GGUF is loaded back with transformers'
`gguf_file=` loader and its next-token predictions are compared with the merged
model's on fixed chat prompts.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import events as ev
from .data.chat_format import ChatFormat
from .fsutil import normal_file_mode

QUANTS = ("f16", "q8_0")
REPORT_FILE = "smolora-export.json"
CHECK_MESSAGES = (
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [{"role": "user", "content": "List three prime numbers."}],
    [{"role": "user", "content": "Explain what a LoRA adapter is in one sentence."}],
)
Emit = Callable[[ev.Event], object]


class ExportError(Exception):
    """The model cannot be exported (the message says why and what to do)."""


@dataclass(frozen=True)
class Architecture:
    gguf_arch: str  # the name in gguf.MODEL_ARCH_NAMES
    permute_qk: bool  # llama.cpp expects q/k rows in its own rotary order for llama-style models
    pre_tokenizer: str  # tokenizer.ggml.pre when the model's own name does not say


ARCHITECTURES = {
    "LlamaForCausalLM": Architecture("llama", True, "default"),
    "MistralForCausalLM": Architecture("llama", True, "default"),
    "Qwen2ForCausalLM": Architecture("qwen2", False, "qwen2"),
}
# llama.cpp picks its pre-tokenizer regex by this name; known model families by their name
PRE_TOKENIZERS = (("smollm", "smollm"), ("qwen", "qwen2"), ("llama-3", "llama-bpe"), ("llama3", "llama-bpe"))


def _progress(emit: Emit | None, message: str, fraction: float) -> None:
    if emit is not None:
        emit(ev.Progress(stage="export", message=message, fraction=fraction))


# ------------------------------------------------------------------ the chat template for Ollama

@dataclass
class OllamaTemplate:
    template: str | None  # a Go template, or None when the chat template could not be translated
    stops: list[str] = field(default_factory=list)
    note: str = ""


def ollama_template(tokenizer, fmt: ChatFormat | None = None) -> OllamaTemplate:
    """Translate the model's chat template into an Ollama (Go) template.

    The Jinja template is rendered with marker contents; the text around each
    marker gives each role's prefix and suffix. The parts are then checked by
    rebuilding a system + three-turn conversation and comparing it with the
    Jinja rendering, character for character. The template is rendered with the
    run's template options (`fmt`), as training rendered it.
    """
    sys_m, user_m, asst_m, user2_m = "SYSMARKQZX", "USERMARKQZX", "ASSTMARKQZX", "USER2MARKQZX"
    eos = tokenizer.eos_token or ""
    fmt = fmt or ChatFormat()

    def render(messages, generation=False):
        return fmt.template(tokenizer, messages, generation)

    if not getattr(tokenizer, "chat_template", None):
        return OllamaTemplate(None, [eos] if eos else [], "the model has no chat template: Ollama will use the raw prompt")
    u, a, u2 = ({"role": "user", "content": user_m}, {"role": "assistant", "content": asst_m},
                {"role": "user", "content": user2_m})
    try:
        one, one_gen = render([u]), render([u], True)
        two, three = render([u, a]), render([u, a, u2])
        if not one_gen.startswith(one) or one_gen == one:
            raise ValueError("no generation prompt")
        gen = one_gen[len(one):]
        asst_suffix = two[two.index(asst_m) + len(asst_m):]
        middle = two[two.index(user_m) + len(user_m):two.index(asst_m)]
        if not middle.endswith(gen):
            raise ValueError("the answer does not follow the generation prompt")
        user_suffix = middle[:len(middle) - len(gen)]
        between = three[three.index(asst_m) + len(asst_m):three.index(user2_m)]
        if not between.startswith(asst_suffix):
            raise ValueError("turns are not separated the same way")
        user_prefix = between[len(asst_suffix):]
        head = one[:one.index(user_m)]
        if not head.endswith(user_prefix):
            raise ValueError("the first turn is rendered differently")
        default_head = head[:len(head) - len(user_prefix)]
        sys_prefix = sys_suffix = None
        try:
            with_system = render([{"role": "system", "content": sys_m}, u])
            sys_prefix = with_system[:with_system.index(sys_m)]
            rest = with_system[with_system.index(sys_m) + len(sys_m):with_system.index(user_m)]
            if rest.endswith(user_prefix):
                sys_suffix = rest[:len(rest) - len(user_prefix)]
        except Exception:  # a template without a system role
            pass
        expected = render([{"role": "system", "content": sys_m}, u, a, u2], True) if sys_suffix is not None else None
        rebuilt = (f"{sys_prefix}{sys_m}{sys_suffix}{user_prefix}{user_m}{user_suffix}{gen}{asst_m}{asst_suffix}"
                   f"{user_prefix}{user2_m}{user_suffix}{gen}")
        if expected is not None and rebuilt != expected:
            raise ValueError("the rebuilt conversation differs from the chat template's")
        if render([u, a, u2], True) != f"{default_head}{user_prefix}{user_m}{user_suffix}{gen}{asst_m}{asst_suffix}" \
                                       f"{user_prefix}{user2_m}{user_suffix}{gen}":
            raise ValueError("the rebuilt conversation differs from the chat template's")
    except (ValueError, TypeError) as exc:
        return OllamaTemplate(None, [eos] if eos else [],
                              f"the chat template could not be translated ({exc}); write TEMPLATE by hand")
    parts = [default_head, user_prefix, user_suffix, gen, asst_suffix, sys_prefix or "", sys_suffix or ""]
    if any("{{" in p or '"""' in p for p in parts):
        return OllamaTemplate(None, [eos] if eos else [], "the chat template's text cannot be quoted in a Modelfile")
    if sys_suffix is not None:
        system = f"{{{{ if .System }}}}{sys_prefix}{{{{ .System }}}}{sys_suffix}{{{{ else }}}}{default_head}{{{{ end }}}}"
    else:
        system = default_head
    template = (f"{system}{{{{ range .Messages }}}}{{{{ if eq .Role \"user\" }}}}{user_prefix}{{{{ .Content }}}}"
                f"{user_suffix}{{{{ else if eq .Role \"assistant\" }}}}{gen}{{{{ .Content }}}}{asst_suffix}"
                f"{{{{ end }}}}{{{{ end }}}}{gen}")
    stops = [s for s in dict.fromkeys([asst_suffix.strip(), eos]) if s]
    return OllamaTemplate(template, stops, "translated from the chat template and checked against it")


def modelfile_text(gguf_name: str, template: OllamaTemplate, context_length: int, system: str = "",
                   name: str = "Modelfile") -> str:
    """The Modelfile (written as `name`); `system` is the run's configured system message (data.system_prompt)."""
    lines = [f"# Written by smolora export. Use: ollama create NAME -f {name}",
             f"FROM ./{gguf_name}"]
    if template.template is not None:
        lines.append(f'TEMPLATE """{template.template}"""')
    else:
        lines.append(f"# {template.note}")
    if system and '"""' not in system:
        lines.append(f'SYSTEM """{system}"""')
    elif system:
        lines.append('# the run\'s system message contains """ and cannot be quoted here: set SYSTEM by hand')
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in template.stops]
    lines += ["PARAMETER temperature 0.7", "PARAMETER top_p 0.9", f"PARAMETER num_ctx {min(context_length, 4096)}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ writing the GGUF

def _pre_tokenizer(name: str, arch: Architecture) -> str:
    lowered = name.lower()
    for needle, pre in PRE_TOKENIZERS:
        if needle in lowered:
            return pre
    return arch.pre_tokenizer


def _permute(weights, heads: int):
    """HF rotary layout -> llama.cpp's (as its converter does)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tensors(folder: Path):
    """(name, float32 numpy array) of every tensor in the folder's safetensors, one at a time."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ExportError(f"{folder} holds no .safetensors weights: merge the run first (`smolora merge`)")
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name).float().numpy()


def _vocabulary(folder: Path, tokenizer, vocab_size: int):
    """(tokens, token types, merges) from a byte-level BPE tokenizer.json."""
    import gguf

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError(f"{folder} has no tokenizer.json (a fast tokenizer): GGUF export needs one")
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"the tokenizer is {model.get('type', 'unknown')}, not byte-level BPE: GGUF export "
                          "supports BPE tokenizers (SmolLM, Llama 3, Qwen2, Mistral Nemo ...) for now")
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


def write_gguf(merged: Path, out: Path, quant: str = "q8_0", emit: Emit | None = None, tokenizer=None) -> dict:
    """Write `merged` (a Hugging Face llama-family folder) as one GGUF file at `out`."""
    import gguf
    import numpy as np
    from transformers import AutoConfig, AutoTokenizer

    from .merge import read_merge_report

    if quant not in QUANTS:
        raise ExportError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTS)}")
    config = AutoConfig.from_pretrained(merged, local_files_only=True)
    architecture = (config.architectures or ["?"])[0]
    arch = ARCHITECTURES.get(architecture)
    if arch is None:
        raise ExportError(f"GGUF export supports {', '.join(ARCHITECTURES)}; this model is {architecture}. "
                          "Use the merged Hugging Face folder instead (llama.cpp's own converter may support it)")
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", None):
        raise ExportError(f"rope scaling {rope_type!r} is not supported by this exporter yet")
    rope_theta = rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(merged, local_files_only=True)
    tokens, types, merges = _vocabulary(merged, tokenizer, config.vocab_size)
    heads, kv_heads, layers = config.num_attention_heads, config.num_key_value_heads, config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads

    tmp = out.with_name(f".{out.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch.gguf_arch)
    name = getattr(config, "_name_or_path", "") or merged.name
    writer.add_name(Path(str(name)).name or "smolora-model")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(len(tokens))
    file_type = gguf.LlamaFileType.MOSTLY_Q8_0 if quant == "q8_0" else gguf.LlamaFileType.MOSTLY_F16
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_tokenizer_model("gpt2")
    source = (read_merge_report(merged) or {}).get("base", "")
    writer.add_tokenizer_pre(_pre_tokenizer(f"{source} {name}", arch))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                             (writer.add_eos_token_id, tokenizer.eos_token_id),
                             (writer.add_unk_token_id, tokenizer.unk_token_id),
                             (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            setter(int(token_id))
    writer.add_add_bos_token(bool(getattr(tokenizer, "add_bos_token", False)))
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH[arch.gguf_arch.upper()], layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    count = 0
    _progress(emit, f"converting tensors to {quant}", 0.1)
    for hf_name, data in _tensors(merged):
        if tied and hf_name == "lm_head.weight":
            continue
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"tensor {hf_name} has no GGUF name: this model's layout is not supported")
        if arch.permute_qk and hf_name.endswith("q_proj.weight"):
            data = _permute(data, heads)
        elif arch.permute_qk and hf_name.endswith("k_proj.weight"):
            data = _permute(data, kv_heads)
        if data.ndim == 1:
            writer.add_tensor(gguf_name, data.astype(np.float32))
        elif quant == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(gguf_name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name, data.astype(np.float16))
        count += 1
    _progress(emit, f"writing {out.name}", 0.5)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.chmod(tmp, normal_file_mode())
    os.replace(tmp, out)
    return {"path": str(out), "quant": quant, "tensors": count, "bytes": out.stat().st_size,
            "architecture": architecture, "context_length": config.max_position_embeddings}


# ------------------------------------------------------------------ checking it

def verify_gguf(merged: Path, gguf_path: Path, tokenizer) -> dict:
    """Load the GGUF back with transformers and compare next-token predictions with the merged model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
               if tokenizer.chat_template else m[0]["content"] for m in CHECK_MESSAGES]
    encoded = [tokenizer(p, return_tensors="pt", add_special_tokens=False) for p in prompts]

    def predictions(model):
        with torch.no_grad():
            return [torch.log_softmax(model(**e).logits[0].float(), -1) for e in encoded]

    reference = predictions(AutoModelForCausalLM.from_pretrained(merged, local_files_only=True).eval())
    gc.collect()
    gguf_tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    same_tokens = all(gguf_tokenizer(p, add_special_tokens=False)["input_ids"] == e["input_ids"][0].tolist()
                      for p, e in zip(prompts, encoded))
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                  dtype=torch.float32).eval()
    got = predictions(loaded)
    positions = sum(len(r) for r in reference)
    agree = sum(int((r.argmax(-1) == g.argmax(-1)).sum()) for r, g in zip(reference, got))
    last = sum(int(r[-1].argmax() == g[-1].argmax()) for r, g in zip(reference, got))
    diff = max(float((r - g).abs().max()) for r, g in zip(reference, got))
    return {"positions": positions, "agreement": agree / positions, "next_token_agreement": f"{last}/{len(got)}",
            "max_abs_logprob_diff": diff,
            "same_tokenization": same_tokens,
            "chat_template": bool(getattr(gguf_tokenizer, "chat_template", None))}


def export_merged(merged: Path, out_dir: Path, quant: str = "q8_0", emit: Emit | None = None,
                  fmt: ChatFormat | None = None) -> dict:
    """GGUF + Modelfile for a merged folder, verified; returns the report (also written beside them).

    `fmt` is how the run rendered its conversations; the Modelfile's template and system message follow it.
    """
    from transformers import AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = out_dir / f"model-{quant}.gguf"
    tokenizer = AutoTokenizer.from_pretrained(merged, local_files_only=True)
    report = write_gguf(merged, gguf_path, quant, emit, tokenizer)
    fmt = fmt or ChatFormat()
    template = ollama_template(tokenizer, fmt)
    modelfile = out_dir / f"Modelfile-{quant}"  # one per export: an f16 export keeps the q8_0 one's
    modelfile.write_text(modelfile_text(gguf_path.name, template, report["context_length"], fmt.system,
                                        modelfile.name))
    report["modelfile"] = str(modelfile)
    report["ollama_template"] = template.note
    _progress(emit, "checking the GGUF against the merged model", 0.7)
    report["check"] = verify_gguf(merged, gguf_path, tokenizer)
    check = report["check"]
    limits = {"f16": (0.99, 0.25), "q8_0": (0.9, 2.0)}[quant]  # agreement at least, log-prob difference at most
    report["ok"] = check["agreement"] >= limits[0] and check["max_abs_logprob_diff"] <= limits[1] \
        and check["same_tokenization"]
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    _progress(emit, "exported", 1.0)
    return report


def export_dir(run_folder: Path, checkpoint: int | None = None) -> Path:
    """Where a run's GGUF export goes: `exports/gguf/` (or `exports/gguf-step-N/` for a checkpoint)."""
    return run_folder / "exports" / ("gguf" if checkpoint is None else f"gguf-step-{checkpoint}")


def read_export_report(folder: Path) -> dict | None:
    try:
        return json.loads((folder / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None


def export_run(project: str, run_id: str | None = None, checkpoint: int | None = None, quant: str = "q8_0",
               emit: Emit | None = None) -> dict:
    """Export a run's merged model (merging first when it has not been merged)."""
    from .merge import merge_run, merged_dir, read_merge_report
    from .runs import read_run_settings, resolve_adapter, run_dir

    run_id, _adapter = resolve_adapter(project, run_id, checkpoint)
    folder = run_dir(project, run_id)
    merged = merged_dir(folder, checkpoint)
    if read_merge_report(merged) is None:
        merge_run(project, run_id, checkpoint, emit)
    fmt = ChatFormat.of(read_run_settings(project, run_id).get("data", {}))
    report = export_merged(merged, export_dir(folder, checkpoint), quant, emit, fmt)
    report["run_id"] = run_id
    return report

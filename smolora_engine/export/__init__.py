"""Export: a merged model as GGUF for llama.cpp and Ollama, with a Modelfile beside it.

- families.py: what each model family needs in GGUF (llama.cpp's converter is the reference);
- gguf_writer.py: the writer (tensors, hyperparameters, chat template);
- vocab.py: the tokenizer in the file (byte-level BPE or SentencePiece-style);
- quants.py: the tensor types, in numpy or through llama.cpp's quantizer;
- ollama.py: the Modelfile and its Go template, checked against the chat template;
- checks.py: the file read back by transformers and by llama.cpp, against the merged model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Callable

from .. import events as ev
from ..data.chat_format import ChatFormat
from .errors import ExportError
from .gguf_writer import write_gguf
from .ollama import OllamaTemplate, modelfile_text, ollama_template
from .quants import (INSTALL_LLAMACPP, KL_LIMITS, QUANTS, STORED_KL, check_quant, llamacpp_available,
                     needs_llamacpp)
from .vocab import adds_bos

__all__ = ["ExportError", "OllamaTemplate", "QUANTS", "export_dir", "export_merged", "export_run",
           "modelfile_text", "ollama_template", "read_export_report", "write_gguf"]

REPORT_FILE = "smolora-export.json"
Emit = Callable[[ev.Event], object]


def _progress(emit: Emit | None, message: str, fraction: float) -> None:
    if emit is not None:
        emit(ev.Progress(stage="export", message=message, fraction=fraction))


def _write(merged: Path, gguf_path: Path, quant: str, tokenizer, emit: Emit | None) -> dict:
    """The GGUF in `quant`: written directly, or (k-quants) written in f16 and quantized by llama.cpp."""
    if not needs_llamacpp(quant):
        _progress(emit, f"converting tensors to {quant}", 0.1)
        return write_gguf(merged, gguf_path, quant, tokenizer)
    from .quants import quantize_with_llamacpp

    with tempfile.TemporaryDirectory(dir=gguf_path.parent) as tmp:
        source = Path(tmp) / "model-f16.gguf"
        _progress(emit, "converting tensors to f16", 0.1)
        report = write_gguf(merged, source, "f16", tokenizer)
        _progress(emit, f"quantizing to {quant} with llama.cpp", 0.3)
        quantize_with_llamacpp(source, gguf_path, quant)
    return {**report, "path": str(gguf_path), "quant": quant, "bytes": gguf_path.stat().st_size}


def _verdict(check: dict, quant: str, reader: str) -> bool:
    """Same tokenization; the file computes what the merged model computes with its weights rounded as
    stored (quants.STORED_KL); and the type moves the merged model's predictions no further than its
    limit (quants.KL_LIMITS), the one check of a k-quant's making, whose blocks are read from the file."""
    stored = check["as_stored"]
    return check["same_tokenization"] and stored["mean_kl"] <= STORED_KL[reader] \
        and check["mean_kl"] <= KL_LIMITS[quant]


def export_merged(merged: Path, out_dir: Path, quant: str = "q8_0", emit: Emit | None = None,
                  fmt: ChatFormat | None = None) -> dict:
    """GGUF + Modelfile for a merged folder, verified; returns the report (also written beside them).

    `fmt` is how the run rendered its conversations; the Modelfile's template and system message follow it.
    The report's `checks` holds each check that ran (transformers, llama.cpp), `unchecked` says which
    could not run and why, and `ok` is true when all passed, None when none could run.
    """
    from transformers import AutoConfig, AutoTokenizer

    from . import checks, families

    check_quant(quant)
    out_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = out_dir / f"model-{quant}.gguf"
    tokenizer = AutoTokenizer.from_pretrained(merged, local_files_only=True)
    config = AutoConfig.from_pretrained(merged, local_files_only=True)
    _architecture, family = families.family_of(config)
    started = time.perf_counter()
    report = _write(merged, gguf_path, quant, tokenizer, emit)
    report["write_s"] = round(time.perf_counter() - started, 2)
    fmt = fmt or ChatFormat()
    stops = [tokenizer.convert_ids_to_tokens(i) for i in families.end_of_turn_ids(tokenizer, family)]
    template = ollama_template(tokenizer, fmt, stops, runtime_bos=adds_bos(tokenizer))
    modelfile = out_dir / f"Modelfile-{quant}"  # one per export: an f16 export keeps the q8_0 one's
    modelfile.write_text(modelfile_text(gguf_path.name, template, report["context_length"], fmt.system,
                                        modelfile.name))
    report.update(modelfile=str(modelfile), ollama_template=template.note, stop_tokens=template.stops)
    _progress(emit, "checking the GGUF against the merged model", 0.6)
    ref = checks.reference(merged, tokenizer, families.end_of_turn_ids(tokenizer, family), quant, family, gguf_path)
    results, unchecked, unloadable = {}, [], ""
    if family.transformers_reads:
        try:
            results["transformers"] = checks.with_transformers(gguf_path, ref, config, family)
        except Exception as exc:  # its GGUF reader's own limits (it maps a llama file named "mistral" to a
            # model type it cannot read): the file is for llama.cpp, so this leaves the check undone
            unchecked.append(f"transformers could not load the file: {type(exc).__name__}: {exc}"[:300])
    else:
        unchecked.append(f"transformers cannot read {family.gguf_arch} GGUF files")
    _progress(emit, "checking the GGUF in llama.cpp", 0.8)
    if llamacpp_available():
        try:
            results["llama.cpp"] = checks.with_llamacpp(gguf_path, ref)
        except Exception as exc:  # llama.cpp is what the file is for: not loading there is a failed export
            unloadable = f"llama.cpp could not load the file: {type(exc).__name__}: {exc}"[:300]
    else:
        unchecked.append(f"llama.cpp check not run: llama-cpp-python is not installed ({INSTALL_LLAMACPP})")
    report["checks"], report["unchecked"] = results, unchecked
    report["check"] = next(iter(results.values()), None)  # the first check that ran, as the app shows it
    report["ok"] = all(_verdict(c, quant, name) for name, c in results.items()) if results else None
    if unloadable:
        report["ok"], report["error"] = False, unloadable
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
    from ..merge import merge_run, merged_dir, read_merge_report
    from ..runs import read_run_settings, resolve_adapter, run_dir

    check_quant(quant)  # before a merge that would be wasted
    run_id, _adapter = resolve_adapter(project, run_id, checkpoint)
    folder = run_dir(project, run_id)
    merged = merged_dir(folder, checkpoint)
    if read_merge_report(merged) is None:
        merge_run(project, run_id, checkpoint, emit)
    fmt = ChatFormat.of(read_run_settings(project, run_id).get("data", {}))
    report = export_merged(merged, export_dir(folder, checkpoint), quant, emit, fmt)
    report["run_id"] = run_id
    return report

"""The GGUF tensor types an export can have, and what makes each.

- f16, q8_0, q5_1, q5_0, q4_1, q4_0: written directly, quantized in numpy by the `gguf`
  package (the same block formats as llama.cpp's). In the 4- and 5-bit types the token
  embeddings and the output head stay q8_0, as llama.cpp's quantizer also keeps them
  at a higher precision: they are where quantization hurts most.
- q4_k_m, q5_k_m, q6_k (k-quants, Ollama's default is q4_k_m): made by llama.cpp's own
  quantizer from an f16 file, through llama-cpp-python (`pip install
  "smolora-tui[llamacpp]"`, built from source in about 10 minutes on 2 cores).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from .errors import ExportError

NUMPY_TYPES = {"f16": "F16", "q8_0": "Q8_0", "q5_1": "Q5_1", "q5_0": "Q5_0", "q4_1": "Q4_1", "q4_0": "Q4_0"}
LLAMACPP_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M", "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
                  "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K"}
QUANTS = ("q4_k_m", "q5_k_m", "q6_k", "q8_0", "f16", "q4_0", "q4_1", "q5_0", "q5_1")
DESCRIPTIONS = {  # short: they label the app's type list
    "q4_k_m": "4-bit, Ollama's default",
    "q5_k_m": "5-bit k-quant",
    "q6_k": "6-bit k-quant",
    "q8_0": "8-bit, half the size",
    "f16": "16-bit",
    "q4_0": "4-bit, legacy blocks",
    "q4_1": "4-bit, legacy blocks",
    "q5_0": "5-bit, legacy blocks",
    "q5_1": "5-bit, legacy blocks",
}
INSTALL_LLAMACPP = 'pip install "smolora-tui[llamacpp]"'
# How far each type may move the next-token distribution of the merged model (mean KL per position,
# in nats): sane agreement, not exactness, for the quantized ones. A wrong conversion moves it by 2
# or more; a real model's q4_k_m by a few hundredths, a tiny random one's by up to about 0.5.
KL_LIMITS = {"f16": 0.01, "q8_0": 0.1, "q6_k": 0.3, "q5_k_m": 0.6, "q5_1": 0.6, "q5_0": 0.6,
             "q4_k_m": 1.0, "q4_1": 1.0, "q4_0": 1.0}
# ... and how far from the merged model rounded as the file stores each weight: transformers computes
# as the reference does (float noise only); llama.cpp also rounds activations to 8 bits in its
# quantized products (measured up to 0.006 on tiny random models; a wrong conversion: 2 or more).
STORED_KL = {"transformers": 1e-3, "llama.cpp": 0.05}


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def needs_llamacpp(quant: str) -> bool:
    return quant in LLAMACPP_TYPES


def check_quant(quant: str) -> None:
    """Refuse an unknown type, or a k-quant without llama.cpp's quantizer, saying what to do."""
    if quant not in QUANTS:
        raise ExportError(f"unknown quantization {quant!r}: choose one of {', '.join(QUANTS)}")
    if needs_llamacpp(quant) and not llamacpp_available():
        raise ExportError(f"{quant} is made by llama.cpp's quantizer, which is not installed: {INSTALL_LLAMACPP} "
                          "(builds llama.cpp, about 10 minutes), or choose q4_0 / q5_1 / q8_0, written without it")


def tensor_type(quant: str, gguf_name: str, shape: tuple[int, ...]):
    """The GGML type a tensor is stored in (quant is one of NUMPY_TYPES)."""
    import gguf

    types = gguf.GGMLQuantizationType
    if len(shape) < 2 or quant == "f16":
        return types.F32 if len(shape) < 2 else types.F16
    kind = NUMPY_TYPES[quant]
    if kind != "Q8_0" and gguf_name.split(".")[0] in ("token_embd", "output"):
        kind = "Q8_0"
    qtype = getattr(types, kind)
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    return qtype if shape[-1] % block == 0 else types.F16  # rows that do not fill whole blocks stay f16


def file_type(quant: str):
    import gguf

    return {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
            "q5_1": gguf.LlamaFileType.MOSTLY_Q5_1, "q5_0": gguf.LlamaFileType.MOSTLY_Q5_0,
            "q4_1": gguf.LlamaFileType.MOSTLY_Q4_1, "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[quant]


def quantize_with_llamacpp(source: Path, out: Path, quant: str) -> None:
    """llama.cpp's quantizer (llama_model_quantize) from an f16 GGUF to a k-quant one."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMACPP_TYPES[quant])
    params.nthread = os.cpu_count() or 1
    code = llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params))
    if code != 0 or not out.is_file():
        raise ExportError(f"llama.cpp's quantizer failed on {source.name} (code {code})")

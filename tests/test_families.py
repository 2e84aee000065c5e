"""Each model family end to end on a tiny random model of its architecture: train two steps, merge
(the logit check), export f16 and 4-bit, read both back, and check the Modelfile's template.

The 4-bit file is q4_0, written here in numpy; with llama-cpp-python installed the test also makes
q4_k_m with llama.cpp's quantizer and checks both files in llama.cpp itself.
"""

from __future__ import annotations

import json

import pytest

from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.export import ExportError, export_run
from smolora_engine.export.quants import llamacpp_available
from smolora_engine.projects import create_project, save_project
from smolora_engine.runs import list_runs
from tests.family_models import FAMILIES, make_family_model

EXPORTABLE = ["llama3", "qwen2", "qwen3", "smollm3", "phi3", "mistral", "granite", "gemma3"]


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    return {name: make_family_model(tmp_path_factory.mktemp(name), name) for name in FAMILIES}


def train_and_merge(name: str, folder) -> str:
    project = create_project(f"fam-{name}", model=str(folder), data=str(demo_train_file()))
    project.training.grad_accum = 1
    project.training.max_steps = 2
    project.training.eval_steps = 0
    project.training.max_length = 512  # the tiny tokenizer spells SmolLM3's long system header out
    project.training.learning_rate = 5e-2
    project.eval.samples = 0
    save_project(project)
    assert main(["train", "--project", project.name]) == 0
    (run,) = list_runs(project.name)
    assert run.status == "finished"
    assert main(["merge", "--project", project.name]) == 0
    merge = json.loads((run.folder / "merged" / "smolora-merge.json").read_text())
    assert merge["ok"] and merge["max_abs_logit_diff"] < 1e-3
    # tied embeddings stay tied: one matrix in the merged weights, and the config says so
    from safetensors import safe_open

    assert json.loads((run.folder / "merged" / "config.json").read_text())["tie_word_embeddings"]
    with safe_open(str(run.folder / "merged" / "model.safetensors"), framework="pt") as weights:
        assert "lm_head.weight" not in weights.keys()
    return project.name


def rendered_by_modelfile(modelfile: str, system: str, user: str) -> str:
    """Render the Modelfile's Go template for one system + user turn, as Ollama would."""
    import re

    template = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1)
    out = re.sub(r"\{\{ if \.System \}\}(.*?)\{\{ \.System \}\}(.*?)\{\{ else \}\}.*?\{\{ end \}\}",
                 lambda m: m.group(1) + system + m.group(2), template, count=1, flags=re.S)
    # Gemma's and Mistral's: the system text opens the first (the only) user turn, or the last
    out = out.replace("{{ $first := true }}", "").replace("range $i, $_ := .Messages", "range .Messages")
    out = re.sub(r"\{\{ if and (\$first|\(eq \(len \(slice \$\.Messages \$i\)\) 1\)) \$\.System \}\}\{\{ \$\.System \}\}"
                 r"(.*?)\{\{ end \}\}(\{\{ \$first = false \}\})?", lambda m: system + m.group(2), out, count=1, flags=re.S)
    loop = re.search(r"\{\{ range \.Messages \}\}\{\{ if eq \.Role \"user\" \}\}(.*?)\{\{ \.Content \}\}(.*?)"
                     r"\{\{ else if .*?\{\{ end \}\}\{\{ end \}\}", out, re.S)
    return out[:loop.start()] + loop.group(1) + user + loop.group(2) + out[loop.end():]


@pytest.mark.parametrize("name", EXPORTABLE)
def test_family_trains_merges_and_exports(family_models, name):
    import gguf
    from transformers import AutoTokenizer

    spec = FAMILIES[name]
    project = train_and_merge(name, family_models[name])
    quants = ["f16", "q4_0"] + (["q4_k_m"] if llamacpp_available() else [])
    for quant in quants:
        report = export_run(project, quant=quant)
        assert report["ok"], (quant, json.dumps(report["checks"], indent=1), report["unchecked"])
        for check_name, check in report["checks"].items():
            assert check["same_tokenization"], check_name
            # the file computes what the merged model does with its weights rounded as stored, even in 4 bits
            assert check["as_stored"]["mean_kl"] < (1e-3 if check_name == "transformers" else 0.05)
            if quant == "f16":
                # Against the unrounded model: f16 rounding may flip one near-tie of a random model's argmax
                # (39 positions: 38 agree), more often after a bf16 run; the distributions stay the same.
                assert check["agreement"] >= 0.95 and check["mean_kl"] < 0.01, check
        if not llamacpp_available():
            assert any("llama-cpp-python is not installed" in r for r in report["unchecked"])
        reader = gguf.GGUFReader(report["path"])
        types = {t.tensor_type.name for t in reader.tensors}
        assert {"f16": "F16", "q4_0": "Q4_0", "q4_k_m": "Q4_K"}[quant] in types
        assert spec.end_of_turn in report["stop_tokens"]
    (run,) = list_runs(project)
    modelfile = (run.folder / "exports" / "gguf" / "Modelfile-q4_0").read_text()
    assert f'PARAMETER stop "{spec.end_of_turn}"' in modelfile
    tokenizer = AutoTokenizer.from_pretrained(run.folder / "merged")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered_by_modelfile(modelfile, "Be brief.", "Hi there") == expected


def test_what_llama_cpp_would_compute_differently_is_refused_clearly(family_models, tmp_path):
    import shutil

    from transformers import AutoConfig

    from smolora_engine.export import write_gguf

    def variant(name: str, **config) -> object:
        folder = tmp_path / name
        shutil.copytree(family_models["gemma3"], folder)
        settings = AutoConfig.from_pretrained(folder)
        for key, value in config.items():
            setattr(settings, key, value)
        settings.save_pretrained(folder)
        return folder

    # llama.cpp's gemma3 fixes the layer pattern (5 sliding, 1 global) and scales attention by 1/sqrt(head_dim)
    with pytest.raises(ExportError, match="Gemma 3 model cannot be written as GGUF: its sliding-window layers"):
        write_gguf(variant("pattern", layer_types=["full_attention", "sliding_attention"]), tmp_path / "a.gguf")
    with pytest.raises(ExportError, match="query_pre_attn_scalar \\(256\\) is not 128"):
        write_gguf(variant("scale", query_pre_attn_scalar=256), tmp_path / "b.gguf")
    # byte fallback without the 256 <0xXX> tokens would abort llama.cpp on the first unknown character
    tokenizer = json.loads((family_models["gemma3"] / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"] = {t: i for t, i in tokenizer["model"]["vocab"].items() if not t.startswith("<0x")}
    bare = variant("bytes")
    (bare / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(ExportError, match="lacks 256 of the 256 <0xXX> byte tokens"):
        write_gguf(bare, tmp_path / "c.gguf")


def test_a_sentencepiece_tokenizer_is_written_with_scores_in_merge_order(family_models, tmp_path):
    """Gemma's kind (no space before the text) and Mistral 7B's (one): llama.cpp's `llama` tokenizer."""
    import gguf

    from smolora_engine.export import write_gguf
    from smolora_engine.export.vocab import adds_space_prefix

    report = write_gguf(family_models["gemma3"], tmp_path / "g.gguf", "f16")
    assert report["tokenizer"] == "SentencePiece-style (llama)"
    reader = gguf.GGUFReader(report["path"])

    def field(name):
        part = reader.fields[name]
        return [part.parts[i].tolist() for i in part.data]

    tokens = [bytes(t).decode() for t in field("tokenizer.ggml.tokens")]
    scores = [s[0] for s in field("tokenizer.ggml.scores")]
    types = [t[0] for t in field("tokenizer.ggml.token_type")]
    assert bytes(field("tokenizer.ggml.model")[0]).decode() == "llama"
    assert field("tokenizer.ggml.add_space_prefix") == [[False]]
    assert sum(t == gguf.TokenType.BYTE for t in types) == 256 and types[tokens.index("<0x0A>")] == gguf.TokenType.BYTE
    assert types[tokens.index("<end_of_turn>")] == gguf.TokenType.CONTROL
    assert types[tokens.index("<unk>")] == gguf.TokenType.UNKNOWN
    merges = json.loads((family_models["gemma3"] / "tokenizer.json").read_text())["model"]["merges"]
    made = [tokens.index("".join(m)) for m in merges[:20]]
    assert [scores[i] for i in made] == sorted((scores[i] for i in made), reverse=True)  # earlier merge, higher
    # Mistral 7B's kind puts ▁ before the text: Metaspace with a prepend scheme
    assert adds_space_prefix({"pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first"}})
    assert not adds_space_prefix({"pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "never"}})
    assert adds_space_prefix({"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}]}})


def test_a_name_that_says_phi3_does_not_abort_llama_cpp(family_models, tmp_path):
    """llama.cpp looks up Phi-3's </s>, <unk>, <s> by text for a model named phi3; this tokenizer has none."""
    import gguf

    from smolora_engine.export import write_gguf

    assert "phi3" in family_models["phi3"].name  # the folder the model is read from names it
    report = write_gguf(family_models["phi3"], tmp_path / "p.gguf", "f16")
    name = gguf.GGUFReader(report["path"]).fields["general.name"]
    assert bytes(name.parts[name.data[0]]).decode() == family_models["phi3"].name.replace("phi3", "phi 3")
    if llamacpp_available():
        from llama_cpp import Llama

        Llama(model_path=report["path"], vocab_only=True, verbose=False)  # raised "Failed to load" before


def test_a_reader_that_cannot_load_the_file_is_named_not_a_crash(family_models, tmp_path):
    """transformers maps a llama-architecture file named "mistral" to a model type its GGUF reader cannot
    map: the export says the check could not run, and llama.cpp still checks it."""
    import shutil

    from smolora_engine.export import export_merged

    named = shutil.copytree(family_models["mistral"], tmp_path / "mistral")  # general.name, exactly "mistral"
    report = export_merged(named, tmp_path / "out", "f16")
    assert "transformers" not in report["checks"]
    assert any(r.startswith("transformers could not load the file: NotImplementedError") for r in report["unchecked"])
    if llamacpp_available():
        assert report["ok"] and report["checks"]["llama.cpp"]["agreement"] >= 0.98
    else:
        assert report["ok"] is None


def test_llama3_rope_factors_are_written(family_models, tmp_path):
    import gguf

    from smolora_engine.export import write_gguf

    report = write_gguf(family_models["llama3"], tmp_path / "l.gguf", "f16")
    reader = gguf.GGUFReader(report["path"])
    freqs = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
    assert len(freqs.data) == 256 // 4 // 2  # one factor per rotary frequency: head_dim / 2
    assert float(freqs.data.max()) == 32.0 and float(freqs.data.min()) == 1.0  # the low ones scaled, high ones kept


def test_a_k_quant_without_llamacpp_says_how_to_get_it(monkeypatch):
    from smolora_engine.export import quants

    monkeypatch.setattr(quants, "llamacpp_available", lambda: False)
    with pytest.raises(ExportError, match=r'pip install "smolora-tui\[llamacpp\]"'):
        quants.check_quant("q4_k_m")
    with pytest.raises(ExportError, match="unknown quantization"):
        quants.check_quant("q3_k_s")


def test_a_bos_the_runtime_adds_is_not_written_twice_in_the_ollama_template(family_models):
    """Llama 3 templates write <|begin_of_text|> first; llama.cpp adds BOS itself when the GGUF says so."""
    from transformers import AutoTokenizer

    from smolora_engine.export import ollama_template

    tokenizer = AutoTokenizer.from_pretrained(family_models["llama3"])
    written = ollama_template(tokenizer, runtime_bos=False)
    assert written.template.startswith("{{ if .System }}<|begin_of_text|><|start_header_id|>system")
    left = ollama_template(tokenizer, runtime_bos=True)
    assert "<|begin_of_text|>" not in left.template and "left to the runtime" in left.note
    assert left.template.replace("{{ if .System }}", "{{ if .System }}<|begin_of_text|>", 1).replace(
        "{{ else }}", "{{ else }}<|begin_of_text|>", 1) == written.template


@pytest.mark.parametrize("name", ["phi3", "llama3", "gemma3", "qwen3"])
def test_answers_stop_at_the_family_end_of_turn(family_models, name):
    """serve, chat, generate and the eval answers stop at the token that ends the family's turns."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from smolora_engine.export.families import stop_token_ids

    spec = FAMILIES[name]
    tokenizer = AutoTokenizer.from_pretrained(family_models[name])
    model = AutoModelForCausalLM.from_pretrained(family_models[name])
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # only eos: the family table adds the rest
    ids = stop_token_ids(model, tokenizer)
    assert tokenizer.convert_tokens_to_ids(spec.end_of_turn) in ids and tokenizer.eos_token_id in ids


def test_output_export_quant_offers_every_type_export_writes():
    from smolora_engine.export.quants import QUANTS
    from smolora_engine.project import Project
    from smolora_engine.project_fields import set_value

    for quant in QUANTS:
        assert set_value(Project(name="p"), "output.export_quant", quant)[1] == []
    assert set_value(Project(name="p"), "output.export_quant", "q3_k_s")[1]

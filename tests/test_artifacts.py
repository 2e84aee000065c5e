"""Merge, GGUF export and the inference worker, on a tiny model trained here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from smolora_engine import events as ev
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.projects import create_project
from smolora_engine.runs import list_runs


def test_adapter_loads_with_plain_peft_and_merge_checks_itself(trained, capsys):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (run,) = list_runs(trained)
    assert main(["merge", "--project", trained]) == 0
    out = capsys.readouterr().out
    assert "max |logit difference|" in out and ": ok" in out
    merged = run.folder / "merged"
    report = json.loads((merged / "smolora-merge.json").read_text())
    assert report["max_abs_logit_diff"] < 1e-3 and report["ok"]
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (merged / name).is_file(), name

    # plain transformers + plain peft, nothing of ours: the two must agree, and differ from the base
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    settings_base = json.loads((merged / "smolora-merge.json").read_text())["base"]
    base = AutoModelForCausalLM.from_pretrained(settings_base).eval()
    inputs = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        base_logits = base(**inputs).logits
        tuned = PeftModel.from_pretrained(base, str(run.folder / "adapter")).eval()
        tuned_logits = tuned(**inputs).logits
        merged_logits = AutoModelForCausalLM.from_pretrained(merged).eval()(**inputs).logits
    assert float((tuned_logits - merged_logits).abs().max()) < 1e-3
    assert float((tuned_logits - base_logits).abs().max()) > 1e-2  # the adapter did something


def test_merge_json_events_and_missing_run(trained, capsys):
    assert main(["merge", "--project", trained, "--json"]) == 0
    events = [ev.parse_line(line) for line in capsys.readouterr().out.splitlines()]
    assert any(isinstance(e, ev.Progress) for e in events)
    assert isinstance(events[-1], ev.Finished) and events[-1].details["ok"]
    assert main(["merge", "--project", trained, "--checkpoint", "999"]) == 2
    assert "no complete checkpoint at step 999" in capsys.readouterr().err


def test_nothing_to_merge_says_train_first(bpe_model, capsys):
    create_project("fresh", model=str(bpe_model), data=str(demo_train_file()))
    assert main(["merge", "--project", "fresh"]) == 2
    assert "train first" in capsys.readouterr().err


@pytest.mark.parametrize("quant", ["f16", "q8_0"])
def test_export_gguf_reloads_and_agrees(trained, quant, capsys):
    import gguf

    assert main(["export", "--project", trained, "--quant", quant]) == 0
    out = capsys.readouterr().out
    (run,) = list_runs(trained)
    folder = run.folder / "exports" / "gguf"
    report = json.loads((folder / "smolora-export.json").read_text())
    assert report["ok"] and report["check"]["same_tokenization"] and report["check"]["chat_template"]
    assert report["check"]["agreement"] >= (0.99 if quant == "f16" else 0.9)
    assert report["check"]["max_abs_logprob_diff"] < (0.25 if quant == "f16" else 2.0)
    assert "next-token agreement" in out
    reader = gguf.GGUFReader(folder / f"model-{quant}.gguf")
    assert reader.fields["general.architecture"].contents() == "llama"
    assert "<|im_start|>" in reader.fields["tokenizer.chat_template"].contents()
    types = {t.tensor_type.name for t in reader.tensors}
    assert ("Q8_0" in types) == (quant == "q8_0")
    modelfile = (folder / f"Modelfile-{quant}").read_text()
    assert f"FROM ./model-{quant}.gguf" in modelfile and f"ollama create NAME -f Modelfile-{quant}" in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in modelfile


def test_each_export_writes_its_own_modelfile(trained):
    assert main(["export", "--project", trained, "--quant", "f16"]) == 0
    assert main(["export", "--project", trained, "--quant", "q8_0"]) == 0
    (run,) = list_runs(trained)
    folder = run.folder / "exports" / "gguf"
    for quant in ("f16", "q8_0"):
        assert f"FROM ./model-{quant}.gguf" in (folder / f"Modelfile-{quant}").read_text()
    assert json.loads((folder / "smolora-export.json").read_text())["modelfile"] == str(folder / "Modelfile-q8_0")


def test_export_check_catches_a_broken_conversion(trained, monkeypatch):
    """Without llama.cpp's q/k row order the reloaded model predicts differently, and the check says so."""
    from smolora_engine import export

    assert main(["merge", "--project", trained]) == 0
    (run,) = list_runs(trained)
    monkeypatch.setattr(export.families, "permute", lambda weights, heads: weights[::-1].copy())
    report = export.export_merged(run.folder / "merged", run.folder / "broken", "f16")
    assert report["check"]["max_abs_logprob_diff"] > 0.25 and not report["ok"]


def test_export_refuses_other_tokenizers_clearly(tiny_model_dir, tmp_path):
    from smolora_engine.export import ExportError, write_gguf

    with pytest.raises(ExportError, match="WordLevel, neither byte-level BPE nor SentencePiece-style"):
        write_gguf(tiny_model_dir, tmp_path / "x.gguf")


def test_ollama_template_for_a_template_with_a_default_system_prompt(embedded_model):
    """SmolLM2's template adds a system prompt when none is given: the Go template keeps that."""
    from transformers import AutoTokenizer

    from smolora_engine.export import ollama_template
    tokenizer = AutoTokenizer.from_pretrained(embedded_model["path"])
    result = ollama_template(tokenizer)
    assert result.template is not None, result.note
    assert "{{ else }}<|im_start|>system\nYou are a helpful AI assistant" in result.template
    assert result.stops[0] == "<|im_end|>"


# ------------------------------------------------------------------ serve

class Worker:
    """`smolora serve` as the TUI runs it: a subprocess spoken to in JSON lines."""

    def __init__(self, project: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "smolora_engine.cli", "serve", "--project", project],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=os.environ.copy(), bufsize=1)
        self.events: list[ev.Event] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for event in ev.iter_stream(self.proc.stdout):
            with self.lock:
                self.events.append(event)

    def send(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def wait(self, predicate, timeout=120.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [e for e in self.events if predicate(e)]
            if found:
                return found[-1]
            assert self.proc.poll() is None, self.proc.stderr.read()
            time.sleep(0.02)
        raise AssertionError(f"timed out; events so far: {self.events[-5:]}")

    def of(self, rid, kind):
        with self.lock:
            return [e for e in self.events if getattr(e, "id", None) == rid and isinstance(e, kind)]

    def close(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def test_serve_streams_cancels_reports_bad_requests_and_shares_weights(trained):
    worker = Worker(trained)
    try:
        ready = worker.wait(lambda e: isinstance(e, ev.Ready))
        assert ready.models == ["base", "adapter"]

        worker.send(id="a", messages=[{"role": "user", "content": "Hello"}], max_new_tokens=12, temperature=0)
        done = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "a")
        tokens = worker.of("a", ev.Token)
        assert tokens and "".join(t.text for t in tokens) == done.text
        assert done.tokens >= 1 and done.ttft_s is not None and not done.cancelled

        # greedy base and adapter answers differ (the adapter is on for one, off for the other)
        worker.send(id="b", messages=[{"role": "user", "content": "Hello"}], max_new_tokens=12, temperature=0,
                    model="base")
        base = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "b")
        assert base.text != done.text
        worker.send(id="a2", messages=[{"role": "user", "content": "Hello"}], max_new_tokens=12, temperature=0)
        again = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "a2")
        assert again.text == done.text  # disabling the adapter for `base` left it intact

        # the same seed gives the same sample
        for rid in ("s1", "s2"):
            worker.send(id=rid, prompt="The capital", max_new_tokens=10, temperature=1.0, seed=7)
        s1 = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "s1")
        s2 = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "s2")
        assert s1.text == s2.text

        # cancel: a long generation stops early
        worker.send(id="long", prompt="Once", max_new_tokens=5000, temperature=1.0, seed=1, repetition_penalty=1.0)
        worker.wait(lambda e: isinstance(e, ev.Token) and e.id == "long")
        worker.send(cancel="long")
        stopped = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "long", timeout=30)
        assert stopped.cancelled and stopped.tokens < 5000

        # bad requests get an error naming the problem; the worker stays up
        worker.proc.stdin.write("this is not json\n")
        worker.send(id="bad1", prompt="x", temperature=-1)
        worker.send(id="bad2", messages=[{"content": "no role"}])
        worker.send(id="bad3", prompt="x", model="merged")
        errors = {e.id: e.message for e in [worker.wait(lambda e: isinstance(e, ev.Error) and e.id == rid)
                                             for rid in ("bad1", "bad2", "bad3")]}
        assert "temperature" in errors["bad1"]
        assert "role" in errors["bad2"]
        assert "smolora merge" in errors["bad3"]
        assert any(isinstance(e, ev.Error) and "not JSON" in e.message for e in worker.events)
        worker.send(id="after", prompt="Hi", max_new_tokens=3, temperature=0)
        worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "after")
    finally:
        worker.close()


def test_serve_offers_merged_after_a_merge(trained):
    assert main(["merge", "--project", trained]) == 0
    worker = Worker(trained)
    try:
        assert worker.wait(lambda e: isinstance(e, ev.Ready)).models == ["base", "adapter", "merged"]
        for rid, model in (("m", "merged"), ("a", "adapter")):
            worker.send(id=rid, prompt="The capital", max_new_tokens=8, temperature=0, model=model)
        merged = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "m")
        adapter = worker.wait(lambda e: isinstance(e, ev.Done) and e.id == "a")
        assert merged.text == adapter.text
    finally:
        worker.close()


def test_generate_and_chat_commands(trained, capsys, monkeypatch):
    import io

    assert main(["generate", "--project", trained, "--prompt", "Hello", "--temperature", "0",
                 "--max-new-tokens", "5"]) == 0
    captured = capsys.readouterr()
    assert "tokens/s" in captured.err
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n/reset\nHi again\n"))
    assert main(["chat", "--project", trained, "--temperature", "0", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.count("adapter> ") == 2


def test_serve_and_the_modelfile_render_as_the_run_trained(bpe_model):
    """The run's frozen data settings decide the rendering, not the project's later edits."""
    from smolora_engine.data.chat_format import ChatFormat
    from smolora_engine.export import modelfile_text, ollama_template
    from smolora_engine.projects import load_project, save_project
    from smolora_engine.serve import Engine, parse_request

    project = create_project("sys", model=str(bpe_model), data=str(demo_train_file()))
    project.data.system_prompt = "Sign every answer."
    project.training.max_steps, project.training.grad_accum, project.training.eval_steps = 1, 1, 0
    project.training.max_length = 64
    save_project(project)
    assert main(["train", "--project", "sys"]) == 0
    project = load_project("sys")
    project.data.system_prompt = "Edited after the run."
    save_project(project)

    engine = Engine("sys")
    assert engine.run_id and engine.format.system == "Sign every answer."
    request = parse_request({"id": "1", "messages": [{"role": "user", "content": "Hi"}]}, "adapter")
    asked = engine.tokenizer.decode(engine.encode(request)["input_ids"][0])
    assert "Sign every answer." in asked and "Edited" not in asked
    own = parse_request({"id": "2", "messages": [{"role": "system", "content": "Be terse."},
                                                 {"role": "user", "content": "Hi"}]}, "adapter")
    assert "Sign every answer." not in engine.tokenizer.decode(engine.encode(own)["input_ids"][0])

    fmt = ChatFormat(system="Sign every answer.")
    text = modelfile_text("model.gguf", ollama_template(engine.tokenizer, fmt), 2048, fmt.system)
    assert 'SYSTEM """Sign every answer."""' in text and "{{ if .System }}" in text


def test_serve_says_nothing_on_stderr_when_all_is_well_and_files_get_normal_modes(trained):
    """No progress bar or library deprecation on the worker's stderr (the app shows its last line when it
    dies); the merged folder's weights are readable like any file the user writes (not 0600)."""
    import stat

    worker = Worker(trained)
    worker.wait(lambda e: isinstance(e, ev.Ready))
    worker.close()
    assert worker.proc.stderr.read().strip() == ""
    assert main(["merge", "--project", trained]) == 0
    (run,) = list_runs(trained)
    from smolora_engine.fsutil import normal_file_mode

    for path in [run.folder / "merged" / "model.safetensors", run.folder / "adapter" / "adapter_model.safetensors",
                 run.folder / "run.toml"]:
        assert stat.S_IMODE(path.stat().st_mode) == normal_file_mode(), path

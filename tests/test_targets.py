"""LoRA targets that mean what they say: every linear layer by default, and a named one that matches nothing said."""

from __future__ import annotations

import json
import shutil

from smolora_engine import events as ev
from smolora_engine.cli import main
from smolora_engine.demo import demo_train_file
from smolora_engine.estimate import read_facts, targets_problem, unmatched_targets
from smolora_engine.projects import create_project, save_project
from smolora_engine.runs import list_runs

LLAMA_LIST = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_tiny_phi3(folder, tokenizer_from):
    """A tiny random Phi-3 (fused qkv_proj and gate_up_proj, as Phi-4-mini has), with the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, Phi3Config, Phi3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    torch.manual_seed(0)
    config = Phi3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        bos_token_id=1, eos_token_id=2, pad_token_id=2, tie_word_embeddings=False)
    Phi3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def project_on(name, model, targets):
    project = create_project(name, model=str(model), data=str(demo_train_file()))
    project.training.max_steps, project.training.grad_accum = 2, 1
    project.training.eval_steps, project.training.save_steps = 0, 2
    project.eval.samples = 0
    if targets is not None:
        project.lora.target_modules = targets
    save_project(project)
    return project


def test_a_named_target_that_matches_no_layer_is_named_with_the_layers_there_are():
    layers = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert unmatched_targets(layers, ["all-linear"]) == []
    assert unmatched_targets(layers, LLAMA_LIST) == ["q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"]
    assert unmatched_targets(layers, ["model.layers.0.self_attn.qkv_proj"]) == []  # PEFT matches the last part
    assert targets_problem(layers, ["q_proj", "o_proj"], "phi") == (
        "lora.target_modules: q_proj match no linear layer of phi (its layers: down_proj, gate_up_proj, o_proj, "
        "qkv_proj), so they get no adapter; use ['all-linear'] or names from that list")


def test_fused_layers_get_adapters_by_default_and_a_llama_list_is_flagged(tiny_model_dir, tmp_path, capsys):
    phi = make_tiny_phi3(tmp_path / "tiny-phi3", tiny_model_dir)
    assert set(read_facts(phi).linear) == {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}

    project_on("phi", phi, None)  # the default: every linear layer
    assert main(["train", "--project", "phi"]) == 0
    run = list_runs("phi")[0]
    config = json.loads((run.folder / "adapter" / "adapter_config.json").read_text())
    assert {t.rsplit(".", 1)[-1] for t in config["target_modules"]} == {"qkv_proj", "o_proj", "gate_up_proj",
                                                                       "down_proj"}
    assert not [e for e in run.events if isinstance(e, ev.Warning) and "target_modules" in e.message]

    project_on("phi-list", phi, LLAMA_LIST)  # written for Llama: only o_proj and down_proj would match
    capsys.readouterr()
    assert main(["show", "phi-list"]) == 0
    assert ("warning: lora.target_modules: q_proj, k_proj, v_proj, gate_proj, up_proj match no linear layer of "
            in capsys.readouterr().err)
    assert main(["train", "--project", "phi-list"]) == 0
    run = list_runs("phi-list")[0]
    warnings = [e.message for e in run.events if isinstance(e, ev.Warning)]
    assert any(w.startswith("lora.target_modules: q_proj, k_proj, v_proj, gate_proj, up_proj match no linear")
               for w in warnings)

    project_on("phi-none", phi, ["q_proj", "v_proj"])  # nothing matches: refused, not a PEFT traceback
    assert main(["train", "--project", "phi-none"]) == 2
    run = list_runs("phi-none")[0]
    assert run.status == "failed" and run.error.startswith("lora.target_modules: q_proj, v_proj match no")
    shutil.rmtree(phi)

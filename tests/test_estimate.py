"""Model facts from a folder's files, and the training memory estimate, against the real model objects."""

from __future__ import annotations

import json

import pytest

from smolora_engine.estimate import FactsError, estimate_training, read_facts, targeted


def test_facts_match_the_loaded_model_and_peft_counts_the_same_adapter(tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    facts = read_facts(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert facts.params == sum(p.numel() for p in model.parameters())
    linear = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name != "lm_head":
            entry = linear.setdefault(name.rsplit(".", 1)[-1], [module.in_features, module.out_features, 0])
            entry[2] += 1
    assert facts.linear == linear

    for targets, dora in ((["q_proj", "v_proj"], False), (["all-linear"], True)):
        estimate = estimate_training(facts, r=4, targets=targets, use_dora=dora, dropout=0.0, batch_size=1,
                                     max_length=64, gradient_checkpointing=True)
        peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                    LoraConfig(r=4, use_dora=dora, target_modules="all-linear"
                                               if targets == ["all-linear"] else targets))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert estimate.adapter_params == trainable, targets


def test_the_estimate_moves_with_the_settings_that_cost_memory(tiny_model_dir):
    facts = read_facts(tiny_model_dir)
    base = dict(r=8, targets=["q_proj"], use_dora=False, dropout=0.0, batch_size=1, max_length=256,
                gradient_checkpointing=True, device="cpu", dtype="float32")
    first = estimate_training(facts, **base)
    assert first.dtype == "float32" and first.weights == facts.params * 4
    assert estimate_training(facts, **{**base, "max_length": 512}).activations == 2 * first.activations
    assert estimate_training(facts, **{**base, "batch_size": 4}).logits == 4 * first.logits
    assert estimate_training(facts, **{**base, "gradient_checkpointing": False}).activations > first.activations
    assert estimate_training(facts, **{**base, "r": 16}).adapter == 2 * first.adapter
    on_gpu = estimate_training(facts, **{**base, "device": "cuda", "dtype": "auto"})
    assert on_gpu.dtype == "bfloat16" and on_gpu.weights == first.weights // 2
    assert targeted(facts, ["model.layers.0.self_attn.q_proj"]) == {"q_proj": facts.linear["q_proj"]}


def test_a_folder_without_a_readable_config_is_refused_with_its_path(tmp_path):
    with pytest.raises(FactsError, match="config.json"):
        read_facts(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8, "num_hidden_layers": 2,
                                                      "vocab_size": 10}))
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(FactsError, match="not a safetensors file"):
        read_facts(tmp_path)


def test_checkpointing_every_nth_layer_keeps_more_than_every_layer_and_less_than_none(tiny_model_dir):
    import dataclasses

    facts = dataclasses.replace(read_facts(tiny_model_dir), layers=12)
    base = dict(r=8, targets=["all-linear"], use_dora=False, dropout=0.0, batch_size=1, max_length=256,
                gradient_checkpointing=True, device="cpu", dtype="float32")
    every = [estimate_training(facts, **base, checkpoint_every=n).activations for n in (1, 2, 3, 4)]
    assert every == sorted(every) and len(set(every)) == 4
    assert every[-1] < estimate_training(facts, **{**base, "gradient_checkpointing": False}).activations
    assert every[0] == estimate_training(facts, **base).activations  # every layer, as before

"""Model facts from a folder's files, and the training memory estimate, against the real model objects."""

from __future__ import annotations

import json

import pytest

from smolora_engine.estimate import BYTES, FactsError, estimate_training, read_facts, targeted


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
    # the loss's chunk of logits stays; the hidden states it keeps grow with the tokens
    assert first.logits < estimate_training(facts, **{**base, "batch_size": 4}).logits < 4 * first.logits
    trained_head = {**base, "targets": ["q_proj", "lm_head"]}  # all the logits at once
    assert (estimate_training(facts, **{**trained_head, "batch_size": 4}).logits
            == 4 * estimate_training(facts, **trained_head).logits)
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


def test_the_loss_part_holds_the_chunked_loss_at_its_peak_and_all_logits_where_it_does_not_apply(tiny_model_dir):
    """The training loss makes a frozen head's logits a chunk at a time; the estimate's loss part is the peak
    that reaches (measured on the heap), not all the logits at once, which a trained head or a model that
    caps its logits (Gemma 2) still needs."""
    import dataclasses

    import torch

    from smolora_engine.estimate import LOSS_CHUNK
    from smolora_engine.training.loss import frozen_head_cross_entropy_sum
    from tests.helpers import heap_peak

    hidden_size, vocab, tokens = 64, 65536, 8 * LOSS_CHUNK  # a chunk's float32 logits: 32 MB
    facts = dataclasses.replace(read_facts(tiny_model_dir), hidden=hidden_size, vocab=vocab)
    settings = dict(r=8, use_dora=False, dropout=0.0, batch_size=1, max_length=tokens, gradient_checkpointing=True,
                    device="cpu")
    torch.manual_seed(0)
    for dtype, torch_dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        estimate = estimate_training(facts, targets=["q_proj"], dtype=dtype, **settings).logits
        head = torch.nn.Linear(hidden_size, vocab, bias=False).to(torch_dtype).requires_grad_(False)
        hidden = torch.randn(tokens, hidden_size, dtype=torch_dtype, requires_grad=True)
        target = torch.randint(0, vocab, (tokens,))
        # the lesser of two runs: a first matmul of a shape may set up buffers it keeps (here 0.2x more)
        peak = min(heap_peak(lambda: frozen_head_cross_entropy_sum(hidden, head, target).backward())[1]
                   for _ in range(2))
        # measured 0.95-1.03x; the previous chunk's logits kept while the next was made held 1.6-2.0x
        assert 0.7 * estimate < peak <= 1.15 * estimate, (dtype, peak, estimate)

        whole = tokens * vocab * (BYTES[dtype] + 12)  # the head's logits, in float32, their log-softmax and gradient
        assert estimate_training(facts, targets=["q_proj", "lm_head"], dtype=dtype, **settings).logits == whole
        capped = dataclasses.replace(facts, plain_logits=False)
        assert estimate_training(capped, targets=["q_proj"], dtype=dtype, **settings).logits == whole


def test_a_model_that_caps_or_scales_its_logits_is_told_from_its_config(tmp_path, tiny_model_dir):
    import shutil

    assert read_facts(tiny_model_dir).plain_logits
    for key, value in (("final_logit_softcapping", 30.0), ("logit_scale", 0.0625), ("logits_scaling", 8.0)):
        folder = tmp_path / key
        shutil.copytree(tiny_model_dir, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "text_config": {key: value}}))
        assert not read_facts(folder).plain_logits, key

"""The recipe chosen for the machine: packing that changes nothing but speed, checkpointing auto, the
precision probe's decision and its cache, and on/off settings that used to be true/false."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from smolora_engine import precision
from smolora_engine.project import Project
from smolora_engine.project_load import project_from_dict
from smolora_engine.training.recipe import (
    PACK_TOKENS,
    checkpointing_label,
    plan_checkpointing,
    plan_packing,
    plan_partial,
)


@pytest.mark.parametrize("attention", ["sdpa", "eager", "sdpa_segments"])
def test_packed_and_unpacked_give_the_same_loss_and_gradients(tiny_model_dir, tmp_path, attention):
    """Three samples (two chat-like with masked prompts, one plain text) packed into one row give the
    loss and adapter gradients of the three fed one at a time: attention never crosses samples, the
    first token of a sample is never predicted from the one before, and the loss counts trained tokens."""
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from smolora_engine.device import DeviceChoice
    from smolora_engine.training.attention import apply_attention
    from smolora_engine.training.recipe import Recipe
    from smolora_engine.training.trainer import (
        PACKED_BOUNDS,
        lora_config,
        make_trainer_class,
        training_args,
    )

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation=attention.split("_")[0])
    model.config.use_cache = False
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    project = Project(name="pack")
    model = get_peft_model(model, lora_config(project))
    for name, param in model.named_parameters():  # LoRA's B starts at zero: give every adapter weight a value
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    generator = torch.Generator().manual_seed(1)
    samples = []
    for length, prompt in ((23, 9), (41, 17), (30, 0)):
        ids = torch.randint(3, model.config.vocab_size, (length,), generator=generator).tolist()
        samples.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})
    choice = DeviceChoice("cpu", "float32", "test")
    recipe = Recipe("float32", "test", plan_packing("on", 3, 1, 41), False, "test", attention, "test")
    assert recipe.packing.packed and recipe.packing.micro_batch == 3
    apply_attention(model, recipe)
    assert model.config._attn_implementation == attention
    trainer = make_trainer_class()(model=model, args=training_args(project, tmp_path, choice.device, recipe, False),
                                   train_dataset=Dataset.from_list(samples), processing_class=tokenizer)
    # The count the trainer passes as num_items_in_batch: every label but the first of each sample.
    trained = sum(sum(1 for label in s["labels"][1:] if label != -100) for s in samples)

    def loss_and_grads(batches):
        model.zero_grad()
        total = 0.0
        for inputs in batches:
            loss = trainer.compute_loss(model, inputs, num_items_in_batch=trained)
            loss.backward()
            total += float(loss.detach())
        return total, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    packed_batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(samples)
    assert "attention_mask" not in packed_batch and packed_batch["input_ids"].shape == (1, 94)
    assert set(PACKED_BOUNDS) <= packed_batch.keys()  # the samples' bounds, which per-sample sdpa reads
    assert packed_batch["position_ids"][0].tolist()[:25] == list(range(23)) + [0, 1]
    single = DataCollatorForLanguageModeling(pad_token_id=0)
    packed_loss, packed_grads = loss_and_grads([packed_batch])
    alone_loss, alone_grads = loss_and_grads([single([s]) for s in samples])
    assert math.isclose(packed_loss, alone_loss, rel_tol=1e-5)
    assert packed_grads.keys() == alone_grads.keys() and len(packed_grads) > 0
    for name, grad in packed_grads.items():
        torch.testing.assert_close(grad, alone_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    # And the check can fail: the same row with one sequence's positions (attention crossing samples) differs.
    crossing = {k: v for k, v in packed_batch.items() if k not in PACKED_BOUNDS}
    crossing["position_ids"] = torch.arange(94)[None]
    crossing_loss, _ = loss_and_grads([crossing])
    assert not math.isclose(crossing_loss, alone_loss, rel_tol=1e-3)


def test_packing_keeps_the_samples_per_step_and_bounds_a_row():
    assert plan_packing("auto", 1, 8, 76) == plan_packing("auto", 1, 8, 76)
    short = plan_packing("auto", 1, 8, 76)
    assert short.packed and (short.micro_batch, short.accum) == (8, 1)
    long = plan_packing("auto", 1, 8, 400)
    assert long.packed and long.micro_batch * 400 <= PACK_TOKENS and long.micro_batch * long.accum == 8
    assert (long.micro_batch, long.accum) == (2, 4)
    whole = plan_packing("auto", 1, 8, PACK_TOKENS)
    assert not whole.packed and (whole.micro_batch, whole.accum) == (1, 8) and "no two fit" in whole.reason
    odd = plan_packing("auto", 1, 6, 200)  # 5 would fit in a row, but neither 5 nor 4 divides 6
    assert (odd.micro_batch, odd.accum) == (3, 2)
    off = plan_packing("off", 2, 4, 76)
    assert not off.packed and (off.micro_batch, off.accum) == (2, 4) and "packing = off" in off.reason
    assert not plan_packing("auto", 1, 1, 76).packed
    custom = plan_packing("auto", 1, 8, 76, attention="its own code")
    assert not custom.packed and "its own code" in custom.reason


def test_checkpointing_auto_turns_on_only_when_the_step_would_not_fit_comfortably():
    on, why = plan_checkpointing("auto", without_mb=3072, available_mb=4096)
    assert on and "3.0 GiB of the 4.0 GiB free" in why
    off, why = plan_checkpointing("auto", without_mb=1500, available_mb=22000)
    assert not off and "1.5 GiB without it" in why
    assert plan_checkpointing("off", 30000, 1000) == (False, "training.gradient_checkpointing = off")
    assert plan_checkpointing("on", 1, 1000)[0]
    unknown_need, why = plan_checkpointing("auto", None, 22000)
    assert unknown_need and "a step needs is not known" in why
    unknown_free, why = plan_checkpointing("auto", 1500, None)
    assert unknown_free and "free on this machine is not known" in why


def test_the_estimate_follows_the_recipe(tiny_model_dir):
    from smolora_engine.estimate import estimate_for, read_facts

    facts, project = read_facts(tiny_model_dir), Project(name="e")
    roomy = estimate_for(facts, project, "cpu", longest=100, free_mb=100_000)
    tight = estimate_for(facts, project, "cpu", longest=100, free_mb=roomy.total / 2**20)
    assert not roomy.checkpointing and tight.checkpointing and tight.activations < roomy.activations
    assert roomy.packing.packed and roomy.packing.micro_batch == 8
    project.training.packing = "off"
    assert estimate_for(facts, project, "cpu", longest=100, free_mb=100_000).activations < roomy.activations


def test_auto_checkpoints_only_every_nth_layer_where_that_is_enough():
    need = {4: 9000, 3: 7000, 2: 5000}  # MB a step needs, checkpointing every n-th layer
    every, why = plan_partial("auto", need, available_mb=20000)
    assert every == 4 and why == "; every 4th layer is enough (about 8.8 GiB) and recomputes less"
    assert plan_partial("auto", need, 16000)[0] == 3  # every 4th layer's 9,000 MB is more than half
    assert plan_partial("auto", need, 10000)[0] == 2
    assert plan_partial("auto", need, 9000) == (1, "")  # none is enough: every layer
    assert plan_partial("on", need, 100_000) == (1, "")  # as set
    assert plan_partial("auto", need, None) == (1, "")  # the free memory unknown: the safe choice
    assert plan_partial("auto", need, 100_000, supported=False) == (1, "")  # transformers before 5.25
    assert [checkpointing_label(True, n) for n in (1, 2, 3, 4)] == [
        "on", "on every 2nd layer", "on every 3rd layer", "on every 4th layer"]
    assert checkpointing_label(False, 2) == "off"


def test_less_free_memory_checkpoints_more_layers(tiny_model_dir):
    """As the memory free shrinks, auto goes from off through every 4th, 3rd and 2nd layer to every layer,
    and the step's estimate falls with each."""
    import dataclasses

    from smolora_engine.estimate import estimate_for, read_facts

    # a model whose activations outweigh its weights and logits, as at long lengths
    facts = dataclasses.replace(read_facts(tiny_model_dir), layers=24, hidden=1024, intermediate=4096)
    project = Project(name="e")
    roomy_mb = estimate_for(facts, project, "cpu", longest=300, free_mb=10**7).total / 2**20
    chosen = []
    for step in range(200):
        estimate = estimate_for(facts, project, "cpu", longest=300, free_mb=2.2 * roomy_mb * 0.99**step)
        label = checkpointing_label(estimate.checkpointing, estimate.checkpoint_every)
        if not chosen or chosen[-1][0] != label:
            chosen.append((label, estimate.total, estimate.checkpointing_reason))
    labels = [label for label, _total, _why in chosen]
    assert labels == ["off", "on every 4th layer", "on every 3rd layer", "on every 2nd layer", "on"], labels
    totals = [total for _label, total, _why in chosen]
    assert totals == sorted(totals, reverse=True)
    assert "every 2nd layer is enough" in chosen[3][2] and "is enough" not in chosen[4][2]


def test_the_trainer_checkpoints_the_layers_the_recipe_names(tiny_model_dir, tmp_path):
    import dataclasses

    from transformers import AutoModelForCausalLM

    from smolora_engine.training.recipe import Packing, Recipe
    from tests.helpers import recipe_trainer

    for every, expected in ((1, [True, True, True, True]), (2, [True, False, True, False])):
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, num_hidden_layers=4)
        recipe = Recipe("float32", "test", Packing(False, 1, 1, "test"), True, "test", checkpoint_every=every)
        recipe_trainer(model, recipe, tmp_path / str(every), tiny_model_dir).train()  # train() turns it on
        assert [layer.gradient_checkpointing for layer in model.model.layers] == expected
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    recipe_trainer(model, dataclasses.replace(recipe, checkpointing=False), tmp_path / "off", tiny_model_dir).train()
    assert not any(layer.gradient_checkpointing for layer in model.model.layers)


def test_on_off_settings_read_the_true_and_false_they_used_to_be():
    project, problems = project_from_dict({"training": {"gradient_checkpointing": True, "packing": False}})
    assert not problems
    assert (project.training.gradient_checkpointing, project.training.packing) == ("on", "off")
    _, problems = project_from_dict({"training": {"gradient_checkpointing": "sometimes"}})
    assert "must be one of 'auto', 'on', 'off'" in problems[0].message


@pytest.mark.parametrize("fp32, cand, fp32_loss, cand_loss, chosen, says", [
    (0.30, 0.15, 7.70, 7.71, "bfloat16", "2.00x as fast"),
    (0.30, 0.29, 7.70, 7.70, "float32", "not faster"),
    (0.30, 0.60, 7.70, 7.70, "float32", "0.50x"),
    (0.30, 0.15, 7.70, 8.00, "float32", "+3.9% off"),
    (0.30, 0.15, 7.70, float("nan"), "float32", "off float32's"),
])
def test_the_probe_picks_reduced_precision_only_when_faster_at_the_same_loss(fp32, cand, fp32_loss, cand_loss,
                                                                              chosen, says):
    got, reason = precision.decide("cpu", "bfloat16", fp32, cand, fp32_loss, cand_loss)
    assert got == chosen and says in reason


def test_the_probe_measures_once_per_machine_and_is_kept(monkeypatch):
    precision.forget("cpu")
    monkeypatch.setattr(precision, "cpu_load_meter", lambda: lambda: 0.0)  # a quiet machine
    result = precision.probe("cpu")
    assert result.chosen in ("float32", "bfloat16") and result.float32_step_s > 0
    assert math.isfinite(result.float32_loss) and result.float32_loss < math.log(8192)  # it learned something
    assert result.chosen == "float32" or abs(result.candidate_loss - result.float32_loss) <= 0.02 * result.float32_loss
    saved = json.loads(precision.probe_file().read_text())
    assert any(entry["chosen"] == result.chosen for entry in saved.values())

    def measure_again(*_args):
        raise AssertionError("measured twice")

    monkeypatch.setattr(precision, "measure", measure_again)
    assert precision.probe("cpu") == result
    from smolora_engine.device import choose_device

    choice = choose_device("cpu", "auto", for_training=True)
    assert (choice.dtype, choice.dtype_reason) == (result.chosen, result.reason)
    assert choose_device("cpu", "auto").dtype == "float32"  # inference keeps float32 off CUDA
    assert choose_device("cpu", "float32", for_training=True).dtype_reason == "model.dtype is set in the project"


def test_a_probe_that_other_programs_competed_with_is_used_once_and_not_kept(monkeypatch):
    """A probe on a busy machine can pick the wrong precision; it says so, and the next run measures again."""
    precision.forget("cpu")
    monkeypatch.setattr(precision, "cpu_load_meter", lambda: lambda: 0.6)
    busy = precision.probe("cpu", steps=2)
    assert busy.busy and "other programs used 60% of the CPUs" in busy.reason
    assert precision.cached_probe("cpu") is None
    monkeypatch.setattr(precision, "cpu_load_meter", lambda: lambda: 0.1)
    quiet = precision.probe("cpu", steps=2)
    assert not quiet.busy and "other programs" not in quiet.reason
    assert precision.cached_probe("cpu") == quiet
    precision.forget("cpu")


def test_the_load_meter_counts_other_programs_not_this_one():
    """This process busy on one CPU: others' share stays near zero (where the machine lets it be measured)."""
    import time

    meter = precision.cpu_load_meter()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pass
    share = meter()
    assert share is None or 0.0 <= share <= 1.0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if share is not None and cpus <= 4:  # counted as others, this process alone would be 1/cpus
        assert share < 0.95 / cpus


def test_the_probe_is_kept_per_cpu_features():
    """Two CPUs sold under one name ("AMD EPYC") with and without avx512_bf16 are different machines."""
    assert "(" in precision._key("cpu") and precision._key("cpu").startswith(f"v{precision.PROBE_VERSION} | cpu")


def test_a_far_slower_candidate_is_given_up_on_after_its_first_step():
    """bf16 emulated on a CPU without bf16 units runs 10-30x slower: the probe stops it, not after minutes."""
    import time

    started = time.perf_counter()
    seconds, loss = precision._train_probe("cpu", "float32", steps=50, give_up_s=1e-6)
    assert math.isnan(loss) and seconds > 1e-6
    assert time.perf_counter() - started < 30  # one step, not 52
    _seconds, loss = precision._train_probe("cpu", "float32", steps=2, give_up_s=None)
    assert math.isfinite(loss)

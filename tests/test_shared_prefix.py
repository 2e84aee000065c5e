"""A packed row's shared prefix (training/shared_prefix.py, data/prefix.py): the untrained tokens every
sample starts with, computed once, give the loss and gradients of the samples fed one at a time, for
the families' attention variants; only untrained tokens are shared; the recipe shares them only where
per-sample sdpa runs; a run's token count stays the data's."""

from __future__ import annotations

import math

import pytest
import torch

from smolora_engine.data.prefix import MIN_SHARED, shared_prefix_length
from smolora_engine.training.recipe import SEGMENTS, plan_packing, plan_shared_prefix
from smolora_engine.training.shared_prefix import SharedPrefixCollator, tokens_saved
from tests.helpers import lora_model, prefixed_samples, recipe_trainer
from tests.family_models import make_family_model

IGNORED = -100


def test_the_shared_length_stops_at_the_first_difference_or_trained_token():
    prefix = list(range(10, 30))
    a, b = prefix + [1, 2, 3], prefix[:15] + [99] + [4, 5]

    def untrained(ids):
        return [IGNORED] * len(ids)

    assert shared_prefix_length([(a, untrained(a)), (b, untrained(b))]) == 15
    # the token after the prefix must be untrained too: it is predicted from the row's token before it
    labels = untrained(a)
    labels[15] = a[15]
    assert shared_prefix_length([(a, labels), (a[:18] + [7], untrained(a[:18] + [7]))]) == 14
    # a trained token inside the prefix ends it there (its loss must count once per sample)
    labels = untrained(a)
    labels[4] = a[4]
    assert shared_prefix_length([(a, labels), (a, untrained(a))]) == 3
    # every sample keeps a token of its own, also a sample that is all prefix
    assert shared_prefix_length([(a, untrained(a)), (prefix, untrained(prefix))]) == len(prefix) - 1
    assert shared_prefix_length([([5, 6], [IGNORED, IGNORED]), ([7, 6], [IGNORED, IGNORED])]) == 0
    assert shared_prefix_length([]) == 0
    assert shared_prefix_length([(a, untrained(a))]) == 0  # one sample alone shares nothing


def test_the_collator_holds_the_prefix_once_and_continues_the_positions():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    inner = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    samples = prefixed_samples(500, 12, [(20, 14), (31, 16), (15, 13)])
    batch = SharedPrefixCollator(inner)(samples)
    assert batch["shared_prefix"] == 12
    assert batch["input_ids"].shape == (1, 20 + 19 + 3)
    assert batch["cu_seq_lens_q"].tolist() == [0, 20, 39, 42]
    assert batch["position_ids"][0].tolist() == list(range(20)) + list(range(12, 31)) + list(range(12, 15))
    assert batch["max_length_q"] == 31  # as attention sees the longest sample, prefix included
    assert batch["labels"][0].tolist() == (samples[0]["labels"][:20] + samples[1]["labels"][12:]
                                           + samples[2]["labels"][12:])
    assert tokens_saved(batch) == 24  # two samples did not repeat the 12 tokens
    assert batch["input_ids"].numel() + tokens_saved(batch) == sum(len(s["input_ids"]) for s in samples)
    # a batch that shares too little, or one sample alone, is the padding-free row as it was
    short = prefixed_samples(500, MIN_SHARED - 1, [(20, 10), (25, 10)])
    assert "shared_prefix" not in SharedPrefixCollator(inner)(short)
    assert "shared_prefix" not in SharedPrefixCollator(inner)(samples[:1])


def _model(folder, attention: str):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attention, dtype=torch.float32)
    model.config.use_cache = False
    return model


@pytest.mark.parametrize("family", ["llama", "qwen3", "gemma3", "mistral", "smollm3", "phi3", "granite"])
def test_a_shared_prefix_gives_the_loss_and_gradients_of_the_samples_alone(tmp_path, tiny_model_dir, family):
    """Through the trainer's own loss (the head at the trained positions, and the model's own loss for
    models that need it), with LoRA on every linear layer: the row with the prefix once gives the loss
    and every adapter gradient of the samples fed one at a time. Qwen3 has q/k norms and grouped heads,
    Gemma 3 a 64-token sliding window (the samples fit in it), SmolLM3 layers without rotary positions,
    Phi-3 fused projections and partial rotary, Granite its own attention and logit scales."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from smolora_engine.training.recipe import Recipe

    folder = tiny_model_dir if family == "llama" else make_family_model(tmp_path, family)
    torch.manual_seed(0)
    model = lora_model(folder)
    packing = plan_packing("on", 3, 1, 50)
    recipe = Recipe("float32", "test", packing, False, "test", SEGMENTS, "test",
                    *plan_shared_prefix(packing, SEGMENTS, 16, 50))
    assert recipe.shared_prefix == 16
    trainer = recipe_trainer(model, recipe, tmp_path, tiny_model_dir)
    samples = prefixed_samples(model.config.vocab_size, 16, [(40, 20), (50, 17), (27, 22)])
    trained = sum(sum(1 for label in s["labels"][1:] if label != IGNORED) for s in samples)
    inner = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    shared = SharedPrefixCollator(inner)(samples)
    assert shared["shared_prefix"] == 16

    def loss_and_grads(batches, fast: bool = True):
        trainer.fast_loss = fast
        model.zero_grad()
        total = 0.0
        for inputs in batches:
            loss = trainer.compute_loss(model, dict(inputs), num_items_in_batch=trained)
            loss.backward()
            total += float(loss.detach())
        return total, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    alone_batches = [DataCollatorForLanguageModeling(pad_token_id=0)([s]) for s in samples]
    losses = {}
    for fast in (True, False):
        alone_loss, alone = loss_and_grads(alone_batches, fast)
        losses[fast] = alone_loss
        shared_loss, grads = loss_and_grads([shared], fast)
        assert math.isclose(shared_loss, alone_loss, rel_tol=1e-5), (fast, shared_loss, alone_loss)
        assert grads.keys() == alone.keys() and len(grads) > 0
        for name, grad in grads.items():
            torch.testing.assert_close(grad, alone[name], rtol=1e-4, atol=1e-6, msg=name)
    # the loss at the trained positions is the model's own (Granite divides its logits by a scale)
    assert math.isclose(losses[True], losses[False], rel_tol=1e-5), losses
    # And the check can fail: the same row, its later samples not reading the prefix, gives other gradients
    # (random weights attend almost evenly, so the loss moves less: 2e-4 of it for the llama).
    blind_loss, blind = loss_and_grads([{k: v for k, v in shared.items() if k != "shared_prefix"}])
    assert not math.isclose(blind_loss, alone_loss, rel_tol=1e-5)
    assert not all(torch.allclose(blind[name], grad, rtol=1e-4, atol=1e-6) for name, grad in alone.items())


def test_a_shared_prefix_never_reaches_the_masked_path(tmp_path):
    """Gemma 3's 64-token window is shorter than a 90-token sample: per-sample attention would see past
    it, and the mask built from the positions would hide the prefix, so the layer refuses the row."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from smolora_engine.training.attention import register

    model = _model(make_family_model(tmp_path, "gemma3"), "sdpa")
    model.set_attn_implementation(register())
    samples = prefixed_samples(model.config.vocab_size, 16, [(90, 20), (30, 20)])
    row = SharedPrefixCollator(DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True))(samples)
    with pytest.raises(ValueError, match="shared prefix"):
        model(**row, use_cache=False)
    # and the recipe would not have shared it
    packing = plan_packing("on", 2, 1, 90)
    assert plan_shared_prefix(packing, SEGMENTS, 16, 90, window=64)[0] == 0


def test_the_recipe_shares_a_prefix_only_where_per_sample_sdpa_reads_it():
    packed, unpacked = plan_packing("auto", 1, 8, 56), plan_packing("off", 1, 8, 56)
    shared, reason = plan_shared_prefix(packed, SEGMENTS, 24, 56)
    assert shared == 24 and "24 untrained tokens" in reason
    assert plan_shared_prefix(unpacked, SEGMENTS, 24, 56) == (0, "")
    for attention in ("sdpa", "eager", "flash_attention_2"):  # each keeps samples apart by their positions
        shared, reason = plan_shared_prefix(packed, attention, 24, 56)
        assert shared == 0 and attention in reason
    assert plan_shared_prefix(packed, SEGMENTS, MIN_SHARED - 1, 56)[0] == 0
    assert plan_shared_prefix(packed, SEGMENTS, 24, 56, window=4096)[0] == 24
    assert plan_shared_prefix(packed, SEGMENTS, 24, 56, setting="off") == (0, "training.shared_prefix = off")


def test_the_data_report_names_the_shared_prefix(tmp_path, tiny_model_dir):
    """Chat rows rendered with a template that opens with a system prompt share it; plain text does not."""
    import json

    from transformers import AutoTokenizer

    from smolora_engine.data import prepare
    from smolora_engine.project import DataSettings

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    chats = tmp_path / "chat.jsonl"
    chats.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": "You answer questions about the weather in a friendly tone."},
        {"role": "user", "content": f"Will it rain on day {i}?"},
        {"role": "assistant", "content": f"Maybe on day {i}."}]}) + "\n" for i in range(12)))
    report = prepare(DataSettings(path=str(chats), eval_ratio=0), tokenizer, 256).report
    assert report.shared_prefix >= MIN_SHARED
    assert f"every sample starts with the same {report.shared_prefix} untrained tokens" in report.summary()
    assert report.to_dict()["shared_prefix"] == report.shared_prefix
    texts = tmp_path / "notes.txt"
    texts.write_text("\n\n".join(f"Note {i}: the kettle is on." for i in range(12)))
    assert prepare(DataSettings(path=str(texts), eval_ratio=0), tokenizer, 256).report.shared_prefix == 0

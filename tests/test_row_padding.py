"""Rows padded to a multiple of 32 tokens (training/row_padding.py): in a packed row the padding is a
segment of its own at the end, in an unpacked batch pad columns after the last; it changes neither the
loss nor any gradient, is not counted as the data's tokens, and is planned on a CPU only."""

from __future__ import annotations

import math

import pytest
import torch

from smolora_engine.training.recipe import SEGMENTS, Recipe, plan_packing, plan_shared_prefix
from smolora_engine.training.row_padding import (
    ROW_MULTIPLE,
    RowPadding,
    computed_tokens,
    plan_row_padding,
    sample_bounds,
)
from smolora_engine.training.shared_prefix import SharedPrefixCollator, tokens_saved
from tests.helpers import lora_model, prefixed_samples, recipe_trainer

IGNORED = -100


def _padding_free():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)


def _assert_padding_changes_nothing(trainer, model, plain: dict, padded: dict, trained: int, data_tokens: int):
    """The padded batch gives the plain one's loss and gradients, counts the data's tokens only, and the
    check can fail: the same padding with labels moves the loss."""
    def loss_and_grads(batch):
        model.zero_grad()
        trainer.tokens_seen = 0
        loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=trained)
        loss.backward()
        return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    plain_loss, plain_grads = loss_and_grads(plain)
    padded_loss, padded_grads = loss_and_grads(padded)
    assert trainer.tokens_seen == data_tokens  # the data's, not the padding
    assert math.isclose(padded_loss, plain_loss, rel_tol=1e-6)
    assert padded_grads.keys() == plain_grads.keys() and len(padded_grads) > 0
    for name, grad in padded_grads.items():
        torch.testing.assert_close(grad, plain_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    pad = padded["input_ids"].shape[1] - plain["input_ids"].shape[1]
    labelled = dict(padded)
    labelled["labels"] = padded["labels"].clone()
    labelled["labels"][0, -pad + 1:] = 5
    assert not math.isclose(loss_and_grads(labelled)[0], plain_loss, rel_tol=1e-3)


def test_a_row_ends_with_a_padding_segment_of_its_own():
    samples = prefixed_samples(500, 12, [(20, 14), (31, 16), (15, 13)])
    plain = SharedPrefixCollator(_padding_free())(samples)  # 20 + 19 + 3 = 42 tokens
    row = RowPadding(SharedPrefixCollator(_padding_free()), 32, pad_token_id=7)(samples)
    assert row["input_ids"].shape == (1, 64) and row["row_padding"] == 22
    assert row["input_ids"][0, :42].tolist() == plain["input_ids"][0].tolist()
    assert row["input_ids"][0, 42:].tolist() == [7] * 22
    assert row["labels"][0, 42:].tolist() == [IGNORED] * 22
    assert row["position_ids"][0, 42:].tolist() == list(range(22))  # a sequence of its own
    assert row["cu_seq_lens_q"].tolist() == row["cu_seq_lens_k"].tolist() == [0, 20, 39, 42, 64]
    assert row["seq_idx"][0, 42:].tolist() == [3] * 22
    assert sample_bounds(row).tolist() == [0, 20, 39, 42]
    assert row["max_length_q"] == 31 and row["shared_prefix"] == 12
    # the data's tokens: what the samples hold, the shared prefix once per sample, no padding
    data_tokens = sum(len(s["input_ids"]) for s in samples)
    assert computed_tokens(row) + tokens_saved(row) == data_tokens
    assert computed_tokens(plain) + tokens_saved(plain) == data_tokens
    # a row already a multiple of 32 long stays as it is
    exact = RowPadding(_padding_free(), 32, 7)([{"input_ids": list(range(3, 35)), "labels": list(range(3, 35))}])
    assert exact["input_ids"].shape == (1, 32) and "row_padding" not in exact


def test_an_unpacked_batch_gets_pad_columns_its_mask_reads_as_the_collator_s_own():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    samples = prefixed_samples(500, 12, [(20, 14), (31, 16), (15, 13)])
    # rows of different lengths: the collator pads with zeros in the mask, and so does the row padding
    batch = RowPadding(DataCollatorForLanguageModeling(pad_token_id=0), 32, 7)(samples)
    assert batch["input_ids"].shape == (3, 32) and batch["row_padding"] == 0
    assert batch["attention_mask"][:, 31:].tolist() == [[0]] * 3 and batch["labels"][:, 31:].tolist() == [[IGNORED]] * 3
    assert computed_tokens(batch) == 66
    # one row, its mask all ones: the pad columns take ones (attention keeps its causal path) and are not counted
    one = RowPadding(DataCollatorForLanguageModeling(pad_token_id=0), 32, 7)(samples[1:2])
    assert one["input_ids"].shape == (1, 32) and one["row_padding"] == 1
    assert one["input_ids"][0, 31:].tolist() == [7] and one["attention_mask"].all()
    assert computed_tokens(one) == 31
    # never past the run's max_length: a 31-token row with max_length 31 stays as it is
    capped = RowPadding(DataCollatorForLanguageModeling(pad_token_id=0), 32, 7, max_length=31)(samples[1:2])
    assert capped["input_ids"].shape == (1, 31) and "row_padding" not in capped
    # a per-token key it does not know (a multimodal collator's token types): the batch as it came

    def typed(examples):
        batch = DataCollatorForLanguageModeling(pad_token_id=0)(examples)
        return {**batch, "token_type_ids": torch.zeros_like(batch["input_ids"])}

    assert RowPadding(typed, 32, 7)(samples[1:2])["input_ids"].shape == (1, 31)


def test_unpacked_padding_changes_neither_the_loss_nor_a_gradient(tiny_model_dir, tmp_path):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    model = lora_model(tiny_model_dir)
    packing = plan_packing("off", 1, 1, 50)
    recipe = Recipe("float32", "test", packing, False, "test", None, "", 0, "", *plan_row_padding(packing, "cpu"))
    assert recipe.row_multiple == ROW_MULTIPLE
    trainer = recipe_trainer(model, recipe, tmp_path, tiny_model_dir)
    sample = prefixed_samples(model.config.vocab_size, 16, [(40, 20)])
    trained = sum(1 for label in sample[0]["labels"][1:] if label != IGNORED)
    inner = DataCollatorForLanguageModeling(pad_token_id=0)
    plain, padded = inner(sample), RowPadding(inner, ROW_MULTIPLE, 5)(sample)
    assert padded["input_ids"].shape[1] == 64 > plain["input_ids"].shape[1] == 40 and padded["row_padding"] == 24

    _assert_padding_changes_nothing(trainer, model, plain, padded, trained, len(sample[0]["input_ids"]))


@pytest.mark.parametrize("attention, shared", [(SEGMENTS, 12), (SEGMENTS, 0), ("sdpa", 0)],
                         ids=["segments-shared-prefix", "segments", "sdpa-mask-from-positions"])
def test_padding_changes_neither_the_loss_nor_a_gradient(tiny_model_dir, tmp_path, attention, shared):
    torch.manual_seed(0)
    model = lora_model(tiny_model_dir)
    packing = plan_packing("on", 3, 1, 50)
    recipe = Recipe("float32", "test", packing, False, "test", attention, "test",
                    *plan_shared_prefix(packing, attention, shared, 50), *plan_row_padding(packing, "cpu"))
    assert recipe.row_multiple == ROW_MULTIPLE
    trainer = recipe_trainer(model, recipe, tmp_path, tiny_model_dir)
    samples = prefixed_samples(model.config.vocab_size, 16, [(40, 20), (50, 17), (27, 22)])
    trained = sum(sum(1 for label in s["labels"][1:] if label != IGNORED) for s in samples)
    inner = SharedPrefixCollator(_padding_free()) if shared else _padding_free()
    plain, padded = inner(samples), RowPadding(inner, ROW_MULTIPLE, 5)(samples)
    assert padded["row_padding"] > 0 and padded["input_ids"].shape[1] % ROW_MULTIPLE == 0

    _assert_padding_changes_nothing(trainer, model, plain, padded, trained, sum(len(s["input_ids"]) for s in samples))


def test_rows_are_padded_on_a_cpu_packed_or_not():
    packed, unpacked = plan_packing("on", 1, 8, 56), plan_packing("off", 1, 8, 56)
    assert plan_row_padding(packed, "cpu")[0] == ROW_MULTIPLE
    assert plan_row_padding(packed, "cuda") == (1, "")  # the caching allocator there: unmeasured
    assert plan_row_padding(unpacked, "cpu")[0] == ROW_MULTIPLE
    assert plan_row_padding(unpacked, "cpu")[1].startswith("each batch padded")
    assert plan_row_padding(unpacked, "cuda") == (1, "")
    padded = Recipe("bfloat16", "test", packed, False, "test", SEGMENTS, "test", 0, "",
                    *plan_row_padding(packed, "cpu"))
    assert any(line.startswith("row padding: each row padded to a multiple of 32") for line in padded.lines())
    plain = Recipe("bfloat16", "test", packed, False, "test", SEGMENTS, "test")
    assert not any(line.startswith("row padding") for line in plain.lines())

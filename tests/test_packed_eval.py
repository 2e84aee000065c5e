"""A packed run's eval loss from packed rows (training/packed_eval.py) is the number the one-sample-at-a-time
loop gives: the mean over samples of each sample's mean loss over its trained tokens."""

from __future__ import annotations

import pytest
import torch

IGNORED = -100


def _samples(vocab: int, seed: int = 3) -> list[dict]:
    """Chat-like samples starting with the same 18 untrained tokens, and plain-text ones trained on every
    token after the first, of different lengths, in one eval split."""
    generator = torch.Generator().manual_seed(seed)

    def tokens(n):
        return torch.randint(3, vocab, (n,), generator=generator).tolist()

    head = tokens(18)
    samples = []
    for length, prompt in [(40, 24), (52, 19), (30, 27), (61, 30), (25, 20)]:
        ids = head + tokens(length - 18)
        samples.append({"input_ids": ids, "labels": [IGNORED] * prompt + ids[prompt:]})
    for length in (33, 12):
        ids = tokens(length)
        samples.append({"input_ids": ids, "labels": list(ids)})
    return samples


def _trainer(tmp_path, folder, eval_rows, shared: int, padded: bool = False):
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from smolora_engine.project import Project
    from smolora_engine.training.attention import apply_attention
    from smolora_engine.training.recipe import (
        SEGMENTS,
        Recipe,
        plan_packing,
        plan_shared_prefix,
    )
    from smolora_engine.training.row_padding import pad_rows, plan_row_padding
    from smolora_engine.training.shared_prefix import share_prefixes
    from smolora_engine.training.trainer import (
        lora_config,
        make_trainer_class,
        training_args,
    )

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
    model.config.use_cache = False
    project = Project(name="eval")
    model = get_peft_model(model, lora_config(project))
    for name, param in model.named_parameters():  # LoRA's B starts at zero: an adapter that changes answers
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    packing = plan_packing("on", 3, 1, 64)
    recipe = Recipe("float32", "test", packing, False, "test", SEGMENTS, "test",
                    *plan_shared_prefix(packing, SEGMENTS, shared, 64),
                    *(plan_row_padding(packing, "cpu") if padded else (1, "")))
    apply_attention(model, recipe)

    def to_dataset(rows):
        return Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows],
                                  "labels": [r["labels"] for r in rows]})

    trainer = make_trainer_class()(model=model, args=training_args(project, tmp_path, "cpu", recipe, True),
                                   train_dataset=to_dataset(eval_rows[:2]), eval_dataset=to_dataset(eval_rows),
                                   processing_class=AutoTokenizer.from_pretrained(folder))
    share_prefixes(trainer, recipe)
    pad_rows(trainer, recipe)
    return trainer, model


def _alone(model, rows) -> float:
    """The definition, from the model's own loss: each sample alone, then the mean over samples."""
    model.eval()
    with torch.no_grad():
        losses = [float(model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss)
                  for r in rows]
    return sum(losses) / len(losses)


@pytest.mark.parametrize("shared, padded", [(18, False), (0, False), (18, True)],
                         ids=["shared-prefix", "packed", "padded-rows"])
def test_packed_eval_gives_the_loss_of_the_samples_alone(tmp_path, tiny_model_dir, shared, padded):
    """Also with rows padded to a multiple of 32 tokens: the padding is no sample of the mean."""
    from transformers import AutoConfig

    rows = _samples(AutoConfig.from_pretrained(tiny_model_dir).vocab_size)
    trainer, model = _trainer(tmp_path, tiny_model_dir, rows, shared, padded)
    if padded:
        row = trainer.data_collator(rows[:3])
        assert row["row_padding"] > 0 and row["input_ids"].shape[1] % 32 == 0
    assert trainer.args.per_device_eval_batch_size == 1 and trainer.args.per_device_train_batch_size == 3
    expected = _alone(model, rows)
    passes = []
    model.get_base_model().get_decoder().register_forward_hook(lambda module, args, out: passes.append(1))
    packed = trainer.evaluate()
    assert packed["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert len(passes) == 3  # 7 samples in rows of 3, 3 and 1
    # the HF loop, one sample per batch (what a model whose loss needs its own logits still runs)
    trainer.fast_loss = False
    assert trainer.evaluate()["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert len(passes) == 3 + 7
    # the check can fail at this tolerance: the mean over all trained tokens weighs long samples more
    model.eval()
    with torch.no_grad():
        sums = [(float(model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss),
                 sum(1 for label in r["labels"][1:] if label != IGNORED)) for r in rows]
    pooled = sum(loss * n for loss, n in sums) / sum(n for _, n in sums)
    assert pooled != pytest.approx(expected, rel=1e-5)


def test_packed_eval_attributes_each_position_to_the_sample_of_its_target():
    from smolora_engine.training.packed_eval import per_sample_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(8, 11, bias=False)
    hidden = torch.randn(1, 9, 8)
    # samples of 4, 3 and 2 tokens; the second has no trained token, each sample's first token is untrained
    labels = torch.tensor([[IGNORED, 5, 6, 7, IGNORED, IGNORED, IGNORED, IGNORED, 2]])
    with torch.no_grad():
        losses = per_sample_loss(hidden, head, labels, torch.tensor([0, 4, 7, 9], dtype=torch.int32)).tolist()

    def ce(position, target):
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(head(hidden[0, position])[None], torch.tensor([target])))

    assert losses[0] == pytest.approx((ce(0, 5) + ce(1, 6) + ce(2, 7)) / 3)
    assert losses[1] == 0.0
    assert losses[2] == pytest.approx(ce(7, 2))

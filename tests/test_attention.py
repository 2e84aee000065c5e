"""Per-sample sdpa on packed rows (training/attention.py): the same loss and gradients as sdpa under
transformers' block-diagonal mask, for the families' attention variants (grouped heads, q/k norms,
sliding windows shorter than a sample), and the recipe picks it only where it helps."""

from __future__ import annotations

import pytest
import torch

from smolora_engine.training.recipe import SEGMENTS, plan_attention, plan_packing
from tests.family_models import make_family_model


def _packed_row(vocab: int, lengths: list[int]) -> dict:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, vocab, (1, sum(lengths)), generator=generator)
    bounds = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    return {"input_ids": ids, "position_ids": torch.cat([torch.arange(n) for n in lengths])[None],
            "cu_seq_lens_q": bounds, "cu_seq_lens_k": bounds,
            "max_length_q": max(lengths), "max_length_k": max(lengths)}


def _loss_and_grads(model, row: dict):
    model.zero_grad()
    out = model(**row, labels=row["input_ids"], use_cache=False)
    out.loss.backward()
    return float(out.loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["qwen3", "gemma3", "mistral"])
def test_per_sample_sdpa_gives_the_masked_loss_and_gradients(tmp_path, family):
    """Qwen3 (q/k norms, grouped heads), Gemma 3 (a 64-token sliding window: the 90-token sample must
    take the masked path) and Mistral: the packed row's loss and every gradient match sdpa's."""
    from transformers import AutoModelForCausalLM

    from smolora_engine.training.attention import register

    folder = make_family_model(tmp_path, family)
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", dtype=torch.float32)
    row = _packed_row(model.config.vocab_size, [23, 90, 7, 31])
    masked_loss, masked = _loss_and_grads(model, row)
    model.set_attn_implementation(register())
    assert model.config._attn_implementation == SEGMENTS
    per_sample_loss, per_sample = _loss_and_grads(model, row)
    assert per_sample_loss == pytest.approx(masked_loss, rel=1e-5)
    assert masked.keys() == per_sample.keys()
    for name, grad in masked.items():
        torch.testing.assert_close(per_sample[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # The bounds are what keeps samples apart: without them (and with one sequence's positions) attention
    # crosses samples, and the loss is not the same.
    crossing = {k: v for k, v in row.items() if not k.startswith(("cu_seq", "max_length"))}
    crossing["position_ids"] = torch.arange(row["input_ids"].shape[1])[None]
    assert _loss_and_grads(model, crossing)[0] != pytest.approx(masked_loss, rel=1e-3)


def test_the_bounds_alone_keep_samples_apart(tiny_model_dir):
    """With one sequence's positions but the samples' bounds, attention stays within each sample; rotary
    attention depends only on relative positions, so the loss is the per-sample one. Plain sdpa, which
    only has the positions, lets the samples see each other: the bounds really are used."""
    from transformers import AutoModelForCausalLM

    from smolora_engine.training.attention import register

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    row = _packed_row(model.config.vocab_size, [17, 40, 25])
    shifted = dict(row, position_ids=torch.arange(row["input_ids"].shape[1])[None])
    packed_loss, _ = _loss_and_grads(model, row)
    crossing_loss, _ = _loss_and_grads(model, shifted)
    model.set_attn_implementation(register())
    assert _loss_and_grads(model, shifted)[0] == pytest.approx(packed_loss, rel=1e-5)
    assert crossing_loss != pytest.approx(packed_loss, rel=1e-4)  # random weights: a small but clear gap


def test_batched_generation_with_a_cache_is_plain_sdpa(tiny_model_dir):
    """Greedy generation of a left-padded batch (a cache, a padding mask, one query at a time), as the
    eval samples run while training, gives the same tokens under either name."""
    from transformers import AutoModelForCausalLM

    from smolora_engine.training.attention import register

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    prompts = torch.tensor([[0, 0, 0, 5, 9, 14], [7, 3, 22, 8, 41, 2]])
    mask = (torch.arange(6) >= torch.tensor([[3], [0]])).long()
    settings = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    plain = model.generate(prompts, **settings)
    alone = model.generate(prompts[:1, 3:], **dict(settings, attention_mask=None))
    assert plain[0, 6:].tolist() == alone[0, 3:].tolist()  # the padding is masked
    model.set_attn_implementation(register())
    assert model.generate(prompts, **settings).tolist() == plain.tolist()


def test_the_recipe_picks_per_sample_sdpa_only_for_packed_sdpa_rows_off_cuda():
    packed, unpacked = plan_packing("auto", 1, 8, 76), plan_packing("off", 1, 8, 76)
    assert plan_attention(packed, "sdpa")[0] == SEGMENTS
    assert plan_attention(packed, "sdpa", "mps")[0] == SEGMENTS
    assert plan_attention(packed, "sdpa", "cuda")[0] == "sdpa"  # unmeasured there: flash-attn's varlen, or the mask
    assert plan_attention(unpacked, "sdpa")[0] == "sdpa"
    assert plan_attention(packed, "flash_attention_2")[0] == "flash_attention_2"
    assert plan_attention(packed, "eager")[0] == "eager"
    assert plan_attention(packed, None) == (None, "")


def test_a_bf16_sample_attends_in_float32_on_a_cpu():
    """A CPU's bf16 sdpa backward is slow on short samples: per-sample attention computes a bf16 row's
    attention in float32 and gives the layer bf16 back. The output is float32 sdpa of the same inputs,
    which bf16 sdpa is not; gradients reach the bf16 inputs."""
    import torch.nn.functional as F

    from smolora_engine.training.attention import segment_attention

    class Layer(torch.nn.Module):
        is_causal = True

    generator = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 4, 40, 32, generator=generator).bfloat16().requires_grad_() for _ in range(3))
    bounds = torch.tensor([0, 15, 40], dtype=torch.int32)
    out, _ = segment_attention(Layer(), q, k, v, None, cu_seq_lens_q=bounds, max_length_q=25)
    assert out.dtype == torch.bfloat16 and out.shape == (1, 40, 4, 32)
    pieces = [(0, 15), (15, 40)]
    in_fp32 = torch.cat([F.scaled_dot_product_attention(q[:, :, a:b].float(), k[:, :, a:b].float(),
                                                        v[:, :, a:b].float(), is_causal=True) for a, b in pieces], 2)
    in_bf16 = torch.cat([F.scaled_dot_product_attention(q[:, :, a:b], k[:, :, a:b], v[:, :, a:b], is_causal=True)
                         for a, b in pieces], 2)
    assert torch.equal(out, in_fp32.to(torch.bfloat16).transpose(1, 2))
    assert not torch.equal(out, in_bf16.transpose(1, 2))
    out.float().sum().backward()
    assert q.grad.dtype == torch.bfloat16 and bool(q.grad.abs().sum() > 0)

"""Lean LoRA adapters (training/lean_adapters.py): PEFT's outputs, gradients and merges, with the
adapters' half-precision inputs kept once instead of a float32 copy per adapter. In bf16 they compute
what PEFT computes under torch.autocast (bf16 products, float32 weights); in fp16 what PEFT computes
without it (float32 products)."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from smolora_engine.training.lean_adapters import lean_adapters


def _peft(base, dtype=torch.bfloat16, **settings):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)  # the same adapter weights for every copy (B non-zero, so every gradient flows)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False,
                        **{"lora_dropout": 0.0, **settings})
    return get_peft_model(copy.deepcopy(base).to(dtype), config)


def _saved_bytes(model, ids) -> tuple[torch.Tensor, int]:
    """The loss, and the bytes of the distinct storages autograd keeps for the backward pass."""
    storages: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    return loss, sum(storages.values())


def _tiny_pair():
    """A tiny bf16 Llama with PEFT's adapters and the same with lean ones, and a row of token ids."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=96))
    plain, lean = _peft(base), _peft(base)
    assert lean_adapters(lean) > 0
    return plain, lean, torch.randint(0, 96, (1, 20), generator=torch.Generator().manual_seed(0))


def _as_peft_computes(dtype):
    """The context in which PEFT's own path computes what the lean adapters compute in `dtype`."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == torch.bfloat16 else contextlib.nullcontext()


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", ["mistral", "phi3"])  # separate q/k/v and gate/up; Phi's fused qkv and gate_up
def test_lean_adapters_give_peft_s_loss_and_gradients_and_keep_less(load_family_model, family, dtype):
    base = load_family_model(family)
    plain, lean = _peft(base, dtype), _peft(base, dtype)
    adapters = sum(len(m.lora_A) for m in lean.modules() if hasattr(m, "lora_variant"))
    assert lean_adapters(lean) == adapters > 0
    ids = torch.randint(3, base.config.vocab_size, (1, 96), generator=torch.Generator().manual_seed(0))
    with _as_peft_computes(dtype):
        reference_loss = plain(input_ids=ids, labels=ids, use_cache=False).loss
    reference_loss.backward()
    lean_loss, lean_bytes = _saved_bytes(lean, ids)
    lean_loss.backward()
    assert lean_loss.item() == reference_loss.item()
    plain_grads, lean_grads = _grads(plain), _grads(lean)
    assert plain_grads.keys() == lean_grads.keys()
    for name, grad in plain_grads.items():
        assert lean_grads[name].dtype == torch.float32, name
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # PEFT without autocast keeps a float32 copy of each adapter's input (4 bytes a value); lean ones keep the
    # input as it came (2 bytes) at most once each: about 2 bytes a value less for every adapter, more where
    # adapters share an input
    plain.zero_grad()
    _plain_loss, plain_bytes = _saved_bytes(plain, ids)
    config = base.config
    per_token = sum(2 * module.in_features for module in lean.modules()
                    if type(module).__name__ == "Linear" and hasattr(module, "lora_variant"))
    assert plain_bytes - lean_bytes >= per_token * ids.shape[1] * 0.9, (plain_bytes, lean_bytes)
    assert config.num_hidden_layers == 2  # the bound counts every adapter of the model


def test_bf16_lean_adapters_keep_float32_weights_and_learn():
    """The bf16 products leave the adapters' weights and the optimizer in float32, and a few steps on
    one row lower its loss."""
    _plain, lean, ids = _tiny_pair()
    trained = [p for p in lean.parameters() if p.requires_grad]
    assert trained and all(p.dtype == torch.float32 for p in trained)
    optimizer = torch.optim.AdamW(trained, lr=1e-2)
    losses = []
    for _ in range(8):
        loss = lean(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert all(state["exp_avg"].dtype == torch.float32 for state in optimizer.state.values())
    assert losses[-1] < losses[0] - 0.1, losses


def test_a_merged_lean_model_is_peft_s_merge():
    plain, lean, ids = _tiny_pair()
    with torch.no_grad():
        with _as_peft_computes(torch.bfloat16):
            reference = plain(input_ids=ids).logits
        torch.testing.assert_close(lean(input_ids=ids).logits, reference, rtol=0, atol=0)
    merged_plain, merged_lean = plain.merge_and_unload(), lean.merge_and_unload()
    for (name, a), (_, b) in zip(merged_plain.state_dict().items(), merged_lean.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("why", ["float32 weights", "dropout", "dora"])
def test_adapters_that_keep_no_copy_stay_peft_s(why):
    """float32 weights (the input needs no cast), dropout (its output is a new tensor anyway) and DoRA
    (its own variant) keep PEFT's path."""
    from transformers import LlamaConfig, LlamaForCausalLM

    base = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, vocab_size=64))
    settings = {"float32 weights": {"dtype": torch.float32}, "dropout": {"lora_dropout": 0.1},
                "dora": {"use_dora": True}}[why]
    model = _peft(base, **settings)
    assert lean_adapters(model) == 0
    variants = [v for m in model.modules() for v in getattr(m, "lora_variant", {}).values()]
    assert not any(type(v).__name__ == "LeanLora" for v in variants)


@pytest.mark.parametrize("reentrant", [True, False])
def test_lean_adapters_under_gradient_checkpointing(reentrant):
    """Checkpointing (`auto` turns it on when a step would not fit) recomputes the forward pass in the
    backward one: the lean adapters' gradients are still PEFT's."""
    plain, lean, ids = _tiny_pair()
    for model in (plain, lean):
        model.train()
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.23's name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        model.enable_input_require_grads()
        with _as_peft_computes(torch.bfloat16) if model is plain else contextlib.nullcontext():
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
    plain_grads, lean_grads = _grads(plain), _grads(lean)
    for name, grad in plain_grads.items():
        assert lean_grads[name] is not None, name
        torch.testing.assert_close(lean_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)

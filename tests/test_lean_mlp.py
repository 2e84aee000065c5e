"""Lean gated MLPs (training/lean_mlp.py): the model's own loss and gradients, bit for bit, with the
activation and the down projection's input no longer kept for the backward pass; an MLP of another shape
or activation is left as it is."""

from __future__ import annotations

import copy

import pytest
import torch

from smolora_engine.training.lean_adapters import lean_adapters
from smolora_engine.training.lean_mlp import lean_mlps
from tests.helpers import heap_held
from tests.test_lean_adapters import _grads


def _trained(base, dtype):
    """The model as training has it: in `dtype`, with all-linear adapters on the lean path."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, lora_dropout=0.0)
    model = get_peft_model(copy.deepcopy(base).to(dtype), config)
    lean_adapters(model)
    return model


# SwiGLU with gate and up apart (Qwen3), Phi-3's fused gate_up, Gemma 3's GeGLU (GELU tanh)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("family", ["qwen3", "phi3", "gemma3"])
def test_lean_mlps_give_the_model_s_loss_and_gradients_and_keep_less(load_family_model, family, dtype):
    base = load_family_model(family)
    plain, lean = _trained(base, dtype), _trained(base, dtype)
    config = base.config
    assert lean_mlps(lean) == config.num_hidden_layers
    plain.train(), lean.train()  # transformers re-kernelizes its marked layers here: the lean MLPs stay lean
    ids = torch.randint(3, config.vocab_size, (1, 512), generator=torch.Generator().manual_seed(0))
    plain_loss, plain_bytes = heap_held(lambda: plain(input_ids=ids, labels=ids, use_cache=False).loss)
    lean_loss, lean_bytes = heap_held(lambda: lean(input_ids=ids, labels=ids, use_cache=False).loss)
    plain_loss.backward()
    lean_loss.backward()
    assert lean_loss.item() == plain_loss.item()
    plain_grads, lean_grads = _grads(plain), _grads(lean)
    assert plain_grads.keys() == lean_grads.keys()
    for name, grad in plain_grads.items():
        assert torch.equal(lean_grads[name], grad), name
    # the activation's output and its product with up (intermediate_size values a token each, each layer)
    kept_less = 2 * config.num_hidden_layers * dtype.itemsize * config.intermediate_size * ids.shape[1]
    assert plain_bytes - lean_bytes >= kept_less * 0.75, (plain_bytes, lean_bytes, kept_less)
    with torch.no_grad():  # evaluation and generation: the same outputs
        assert torch.equal(lean(input_ids=ids).logits, plain(input_ids=ids).logits)


class _GatedMLP(torch.nn.Module):
    def __init__(self, act_fn, scale: float = 1.0):
        super().__init__()
        self.gate_proj, self.up_proj = torch.nn.Linear(8, 16), torch.nn.Linear(8, 16)
        self.down_proj, self.act_fn, self.scale = torch.nn.Linear(16, 8), act_fn, scale

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x) * self.scale)


@pytest.mark.parametrize("why", ["it scales its product", "its activation has no one-op derivative"])
def test_an_mlp_that_computes_something_else_is_left_as_it_is(why):
    mlp = _GatedMLP(torch.nn.SiLU(), 0.5) if why == "it scales its product" else _GatedMLP(torch.nn.Mish())
    assert lean_mlps(torch.nn.Sequential(mlp)) == 0
    assert type(mlp) is _GatedMLP


def test_a_copied_lean_model_computes_with_its_own_weights(load_family_model):
    """A lean MLP's forward belongs to its class: a deep copy (as a trainer may make) uses the copy's weights."""
    model = _trained(load_family_model("qwen3"), torch.bfloat16)
    assert lean_mlps(model) > 0
    copied = copy.deepcopy(model)
    ids = torch.randint(3, 50, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for module in copied.modules():
            if type(module).__name__.endswith("MLP"):
                for parameter in module.parameters():
                    parameter.zero_()
        assert not torch.equal(copied(input_ids=ids).logits, model(input_ids=ids).logits)

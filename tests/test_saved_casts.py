"""Saved float32 copies kept as their half-precision source (training/saved_casts.py): the model's own loss
and gradients, bit for bit, with the norms' and attention's float32 copies no longer kept; only without
gradient checkpointing."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from smolora_engine.training.attention import recast_attention_inputs, register
from smolora_engine.training.lean_adapters import lean_adapters
from smolora_engine.training.lean_mlp import lean_mlps
from smolora_engine.training.saved_casts import lean_norms, recast_saved
from tests.helpers import heap_held
from tests.test_lean_adapters import _grads


def _normalised(x):
    """An RMSNorm's arithmetic: a float32 copy, kept for the backward pass by pow and mul."""
    copy = x.float()
    return (copy * torch.rsqrt(copy.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)


def _gradient(x, recast: bool):
    source = x.detach().requires_grad_()
    y = source * 1.5  # the source has a node of its own, as every activation in a model has
    with recast_saved(y) if recast else contextlib.nullcontext():
        out = _normalised(y)
    out.float().square().sum().backward()
    return source.grad


def test_a_recast_copy_gives_the_same_gradient_and_is_not_kept():
    x = torch.randn(256, 512, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    assert torch.equal(_gradient(x, recast=True), _gradient(x, recast=False))
    source = x.detach().requires_grad_()
    y = source * 1.5

    def forward(recast: bool):
        with recast_saved(y) if recast else contextlib.nullcontext():
            return _normalised(y)

    _out, plain = heap_held(lambda: forward(False))
    _out2, lean = heap_held(lambda: forward(True))
    # the float32 copy (4 bytes a value) gives way to the bf16 source, which y keeps anyway
    assert plain - lean >= 0.9 * 4 * x.numel(), (plain, lean)


def test_a_source_changed_in_place_after_its_copy_was_saved_makes_the_backward_pass_raise():
    source = torch.randn(8, 16).to(torch.bfloat16).requires_grad_()
    y = source * 1.5
    with recast_saved(y):
        out = _normalised(y)
    with torch.no_grad():
        y.add_(1)  # the float32 copy the backward pass needs is no longer the source's
    with pytest.raises(RuntimeError, match="in-place"):
        out.float().sum().backward()


def test_a_copy_of_another_tensor_is_kept_as_it_is():
    """Only copies of the sources are recast: the same shape from another tensor is saved itself."""
    a = (torch.randn(4, 8).to(torch.bfloat16).requires_grad_() * 1)
    b = (torch.randn(4, 8).to(torch.bfloat16).requires_grad_() * 1)
    kept = []

    def outer_pack(tensor):
        kept.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(outer_pack, lambda t: t):
        plain = _normalised(b)
    with recast_saved(a):
        lean = _normalised(b)
    assert torch.equal(plain, lean)
    lean.float().sum().backward()  # b's copy was kept as it is: nothing to recast, nothing fails
    assert any(t.dtype == torch.float32 and t.shape == b.shape for t in kept)


def _model(base, dtype, norms: bool = False, attention: bool = False):
    """All-linear adapters and gated MLPs as training without checkpointing has them, with the norms and
    attention keeping their half-precision inputs or not. Attention is the recipe's per-sample sdpa."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, lora_dropout=0.0)
    model = get_peft_model(copy.deepcopy(base).to(dtype), config)
    model.get_base_model().set_attn_implementation(register())
    lean_adapters(model)
    lean_mlps(model)
    if norms:
        assert lean_norms(model) >= 2 * base.config.num_hidden_layers
    if attention:
        assert recast_attention_inputs(model) == base.config.num_hidden_layers
    model.train()  # transformers re-kernelizes its marked layers here (RMSNorm): the lean norms stay lean
    return model


def _norm_inputs(model, row) -> int:
    """How many values the model's RMSNorms take in one forward pass of `row` that need gradients (the first
    layer's reads the frozen embeddings: autograd keeps nothing for it)."""
    seen = []
    hooks = [module.register_forward_pre_hook(lambda module, args: seen.append(args[0].numel() * args[0].requires_grad))
             for module in model.modules() if type(module).__name__.endswith("RMSNorm")]
    model(**row)
    for hook in hooks:
        hook.remove()
    return sum(seen)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("family", ["qwen3", "phi3", "gemma3"])  # q/k norms; fused qkv; four norms a layer
def test_recast_norms_and_attention_give_the_model_s_loss_and_gradients_and_keep_less(load_family_model, family,
                                                                                      dtype):
    base = load_family_model(family)
    config = base.config
    tokens, sample = 512, 64  # a packed row of 8 samples, each within Gemma 3's sliding window, as training sends
    ids = torch.randint(3, config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    bounds = torch.arange(0, tokens + 1, sample, dtype=torch.int32)
    row = dict(input_ids=ids, labels=ids, position_ids=torch.arange(tokens)[None] % sample, cu_seq_lens_q=bounds,
               cu_seq_lens_k=bounds, max_length_q=sample, max_length_k=sample)
    models = {"plain": _model(base, dtype), "norms": _model(base, dtype, norms=True),
              "both": _model(base, dtype, norms=True, attention=True)}
    heap_held(lambda: models["plain"](**row).loss.backward())  # first-call caches out of the count
    models["plain"].zero_grad(set_to_none=True)
    losses, held = {}, {}
    for name, model in models.items():
        losses[name], held[name] = heap_held(lambda: model(**row).loss)
        losses[name].backward()
    plain_grads = _grads(models["plain"])
    for name in ("norms", "both"):
        assert losses[name].item() == losses["plain"].item()
        grads = _grads(models[name])
        assert grads.keys() == plain_grads.keys()
        for parameter, grad in plain_grads.items():
            assert torch.equal(grads[parameter], grad), (name, parameter)
    # half of each float32 copy (4 bytes a value, against the source's 2) is no longer kept: of every norm's
    # input, and of each layer's query, key and value (measured: 0.95-0.98 of it; a recast that stops working
    # saves nothing). Nor the output of the two norms a layer whose output its adapters read (2 bytes a value;
    # the first layer's keeps its input instead, which nothing else keeps)
    renormed = config.num_hidden_layers * 2 - 1
    norms_less = 2 * _norm_inputs(models["plain"], row) + 2 * tokens * config.hidden_size * renormed
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention_less = 2 * config.num_hidden_layers * tokens * head_dim * (config.num_attention_heads
                                                                          + 2 * config.num_key_value_heads)
    assert held["plain"] - held["norms"] >= 0.75 * norms_less, (held, norms_less)
    assert held["norms"] - held["both"] >= 0.75 * attention_less, (held, attention_less)
    with torch.no_grad():  # evaluation and generation: the same outputs
        assert torch.equal(models["both"](input_ids=ids).logits, models["plain"](input_ids=ids).logits)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_the_recipe_recasts_only_without_checkpointing_and_says_so(load_family_model, checkpointing):
    """Checkpointing's own saved-tensor hooks would give way to these: with it, nothing is recast."""
    from peft import LoraConfig, get_peft_model

    from smolora_engine.training.apply_recipe import prepare_model
    from smolora_engine.training.attention import RECASTS
    from smolora_engine.training.recipe import SEGMENTS, Packing, Recipe
    from smolora_engine.training.saved_casts import _RecastNorm

    model = get_peft_model(load_family_model("qwen3").to(torch.bfloat16),
                           LoraConfig(r=8, target_modules="all-linear", lora_dropout=0.0))
    recipe = Recipe("bfloat16", "test", Packing(True, 8, 1, "test"), checkpointing, "test", SEGMENTS, "test")
    lines = prepare_model(model, recipe)
    norms = [m for m in model.modules() if type(m).__name__.endswith("RMSNorm")]
    attention = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    assert norms and attention
    recast = not checkpointing
    assert all(isinstance(m, _RecastNorm) == recast for m in norms)
    assert all(getattr(m, RECASTS, False) == recast for m in attention)
    assert any(line.startswith(f"norms: {len(norms)} keep their bfloat16 input") for line in lines) == recast
    assert any(line.startswith("attention per sample: float32 copies") for line in lines) == recast


def test_a_norm_output_kept_as_its_input_gives_the_same_gradients_once_made_and_raises_if_the_input_changed():
    """What an adapter keeps of a norm's output is the norm's input: the output is made again once, for the
    three adapters that read it, and a norm input changed in place makes the backward pass raise."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    from smolora_engine.training.lean_adapters import _Bf16LowRankUpdate
    from smolora_engine.training.saved_casts import _RecastNorm, keeping_norm_input

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=generator).to(torch.bfloat16)
    adapters = [(torch.randn(4, 32, generator=generator), torch.randn(32, 4, generator=generator)) for _ in range(3)]
    norm = torch.nn.Sequential(LlamaRMSNorm(32).to(torch.bfloat16))
    lean_norms(norm)

    def grads(keep: bool, change_input: bool = False):
        source = x.detach().requires_grad_()
        hidden = source * 1.5
        out = norm(hidden)
        weights = [(a.clone().requires_grad_(), b.clone().requires_grad_()) for a, b in adapters]
        total = 0
        for a, b in weights:
            with keeping_norm_input(out) if keep else contextlib.nullcontext():
                total = total + _Bf16LowRankUpdate.apply(out, a, b, 2.0)
        if change_input:
            with torch.no_grad():
                hidden.add_(1)
        total.float().square().sum().backward()
        return [source.grad] + [w.grad for pair in weights for w in pair]

    calls = []
    original = type(norm[0]).forward
    type(norm[0]).forward = lambda self, *args, **kwargs: calls.append(1) or original(self, *args, **kwargs)
    try:
        plain = grads(keep=False)
        calls.clear()
        lean = grads(keep=True)
    finally:
        type(norm[0]).forward = original
    assert isinstance(norm[0], _RecastNorm)
    assert len(calls) == 2  # the forward pass's, and once more in the backward pass for all three adapters
    for ours, theirs in zip(lean, plain):
        assert torch.equal(ours, theirs)
    with pytest.raises(RuntimeError, match="in-place"):
        grads(keep=True, change_input=True)

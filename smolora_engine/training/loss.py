"""Cross-entropy through a frozen LM head, a chunk of positions at a time.

With LoRA the LM head is frozen, so the backward pass only needs the gradient
with respect to the hidden states: (softmax - one_hot) @ W. It is computed in
the forward pass, chunk by chunk, and kept (positions x hidden), so the logits
over the vocabulary (positions x 49,152 for SmolLM2) are never held for the
backward pass, nor recomputed. Same FLOPs as the plain path, a fraction of its
memory.
"""

from __future__ import annotations

import torch

from ..estimate import LOSS_CHUNK

CHUNK = LOSS_CHUNK  # positions per chunk: 128 x 49,152 float32 logits = 24 MB (the estimate counts them)


def _chunk_loss(hidden, weight, bias, target, grad):
    """The summed cross-entropy of one chunk of positions; their gradient written into `grad` (when given).

    A function of its own, so that the chunk's logits are freed when it returns: kept by a loop's
    variables, they would still be alive while the next chunk's are made, twice their size at the loss's
    peak, which is the step's (every activation is alive while the loss runs)."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    rows = torch.arange(logits.shape[0], device=logits.device)
    chosen = logits[rows, target]
    # log-sum-exp in place of the logits: torch.logsumexp would make a second tensor of their size
    top = logits.amax(dim=-1, keepdim=True)
    exp = logits.sub_(top).exp_()
    sums = exp.sum(dim=-1, keepdim=True)
    loss = ((top + sums.log()).squeeze(-1) - chosen).sum()
    if grad is not None:
        probs = exp.div_(sums)  # softmax
        probs[rows, target] -= 1.0
        grad.copy_(probs.to(weight.dtype) @ weight)
    return loss


class _FrozenHeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, chunk):
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        for start in range(0, hidden.shape[0], chunk):
            total += _chunk_loss(hidden[start:start + chunk], weight, bias, target[start:start + chunk],
                                 None if grad is None else grad[start:start + chunk])
        ctx.save_for_backward(grad if grad is not None else torch.empty(0))
        return total

    @staticmethod
    def backward(ctx, grad_total):
        (grad,) = ctx.saved_tensors
        return grad * grad_total.to(grad.dtype), None, None, None, None


def frozen_head_cross_entropy_sum(hidden: torch.Tensor, head: torch.nn.Linear, target: torch.Tensor,
                                  chunk: int = CHUNK) -> torch.Tensor:
    """Sum over positions of cross_entropy(head(hidden), target); `head` must not need gradients."""
    if head.weight.requires_grad or (head.bias is not None and head.bias.requires_grad):
        raise ValueError("the LM head is trained: use the plain loss")
    return _FrozenHeadCrossEntropy.apply(hidden, head.weight, head.bias, target, chunk)


def chunk_logits_bytes(head, chunk: int = CHUNK) -> int:
    """The size of the smallest block the loss allocates for a chunk of logits: in the head's dtype."""
    weight = head.weight
    return chunk * weight.shape[0] * weight.element_size()


def head_is_frozen_linear(head) -> bool:
    return (type(head) is torch.nn.Linear and not head.weight.requires_grad
            and (head.bias is None or not head.bias.requires_grad))

"""Generalized Label Smoothing (GLS) for the image model's 14 binary sigmoid heads (DESIGN.md, Rep-GLS).

For one finding with one-hot target y over K classes and rate r in (-1, 1):

    L = (1 - r) * CE(y, p) + r * mean_k(-log p_k)

With a sigmoid head, K = 2 and p = (1 - sigmoid(z), sigmoid(z)), so
    L = -(1 - r) * [y log p + (1 - y) log(1 - p)] - (r / 2) * [log p + log(1 - p)]
      = BCE(soft target t, p)   with   t = (1 - r) * y + r / 2,
exactly (no constant). The loss is therefore computed as binary cross-entropy with logits against
the soft target, which is numerically stable. r = 0 is plain BCE; r > 0 smooths (t moves towards
1/2); r < 0 sharpens (t moves past 0 or 1, so a confident correct prediction keeps a gradient).

Findings a source does not label are masked (mask = 0): they add nothing to the loss or its gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

K_BINARY = 2


def soft_targets(targets: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """GLS soft target (1 - r) * y + r / K for binary heads (K = 2)."""
    return (1.0 - rates) * targets + rates / K_BINARY


def gls_loss_elementwise(logits: torch.Tensor, targets: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """Per image and finding GLS loss (no reduction, no mask), same shape as `logits`."""
    if torch.any(rates <= -1) or torch.any(rates >= 1):
        raise ValueError("GLS rates must lie in (-1, 1)")
    return F.binary_cross_entropy_with_logits(logits, soft_targets(targets, rates), reduction="none")


def gls_loss(logits: torch.Tensor, targets: torch.Tensor, rates: torch.Tensor | float = 0.0,
             mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean GLS loss over the labelled (mask = 1) image-finding pairs.

    logits, targets, mask: [batch, 14]; rates: [batch, 14] or a scalar (0.0 = plain BCE).
    A batch with nothing labelled gives 0 (with a gradient path), never NaN.
    """
    rates = torch.as_tensor(rates, dtype=logits.dtype, device=logits.device).expand_as(logits)
    loss = gls_loss_elementwise(logits, targets.to(logits.dtype), rates)
    if mask is None:
        return loss.mean()
    mask = mask.to(logits.dtype)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = ["gls_loss", "gls_loss_elementwise", "soft_targets"]

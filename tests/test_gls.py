"""GLS loss (export/images/gls.py): the identities DESIGN.md states, masking, and the sign of r."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from export.images.gls import gls_loss, gls_loss_elementwise, soft_targets  # noqa: E402

pytestmark = pytest.mark.export


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 14, generator=g) * 3
    targets = (torch.rand(8, 14, generator=g) > 0.5).float()
    rates = torch.rand(8, 14, generator=g) * 1.6 - 0.8
    return logits, targets, rates


def test_r_zero_is_bce():
    logits, targets, _ = _batch()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(gls_loss(logits, targets, 0.0), expected, atol=1e-6)


def test_definition_equals_soft_target_bce():
    """(1 - r) CE(y) + r mean_k(-log p_k) with p = (1 - sigmoid, sigmoid) equals BCE on (1 - r) y + r / 2."""
    logits, targets, rates = _batch(1)
    logits = logits.double()
    log_p1 = torch.nn.functional.logsigmoid(logits)
    log_p0 = torch.nn.functional.logsigmoid(-logits)
    ce = -(targets * log_p1 + (1 - targets) * log_p0)
    uniform = -(log_p1 + log_p0) / 2
    by_definition = (1 - rates) * ce + rates * uniform
    got = gls_loss_elementwise(logits, targets.double(), rates.double())
    assert torch.allclose(got, by_definition, atol=1e-10)
    assert torch.allclose(soft_targets(targets, rates), (1 - rates) * targets + rates / 2)


def test_masked_entries_add_nothing():
    logits, targets, rates = _batch(2)
    mask = torch.zeros(8, 14)
    mask[:, :5] = 1
    logits = logits.clone().requires_grad_(True)
    loss = gls_loss(logits, targets, rates, mask)
    loss.backward()
    assert torch.all(logits.grad[:, 5:] == 0)
    assert torch.any(logits.grad[:, :5] != 0)
    changed = targets.clone()
    changed[:, 5:] = 1 - changed[:, 5:]
    assert torch.allclose(gls_loss(logits.detach(), changed, rates, mask), loss.detach())
    expected = gls_loss_elementwise(logits.detach(), targets, rates)[:, :5].mean()
    assert torch.allclose(loss.detach(), expected, atol=1e-6)


def test_nothing_labelled_gives_zero_not_nan():
    logits, targets, rates = _batch(3)
    loss = gls_loss(logits, targets, rates, torch.zeros(8, 14))
    assert float(loss) == 0.0


def test_negative_rate_sharpens_positive_rate_smooths():
    """At a confident correct prediction r < 0 keeps pushing the logit, r > 0 pulls it back to 1/2."""
    logit = torch.tensor([[4.0]], requires_grad=True)
    grads = {}
    for r in (-0.2, 0.0, 0.2):
        logit.grad = None
        gls_loss(logit, torch.ones(1, 1), r).backward()
        grads[r] = float(logit.grad)
    assert grads[-0.2] < grads[0.0] < 0 < grads[0.2]
    # The optimum of a smoothed target is p = 1 - r / 2, not p = 1.
    z = torch.zeros(1, 1, requires_grad=True)
    opt = torch.optim.SGD([z], lr=5.0)
    for _ in range(500):
        opt.zero_grad()
        gls_loss(z, torch.ones(1, 1), 0.3).backward()
        opt.step()
    assert abs(float(torch.sigmoid(z.detach())) - 0.85) < 1e-3


def test_rates_outside_range_are_refused():
    logits, targets, _ = _batch(4)
    with pytest.raises(ValueError):
        gls_loss(logits, targets, 1.0)

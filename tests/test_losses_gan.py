"""Adversarial losses against hand-computed values."""
import math

import pytest
import torch

from lsgan import losses as L


def test_hinge_hand_values():
    d_real = torch.tensor([2.0, 0.5])   # relu(1-2)=0, relu(1-0.5)=0.5 -> mean 0.25
    d_fake = torch.tensor([-2.0, 0.0])  # relu(1-2)=0, relu(1+0)=1   -> mean 0.5
    assert torch.isclose(L.d_hinge(d_real, d_fake), torch.tensor(0.75))
    assert torch.isclose(L.g_hinge(d_fake), torch.tensor(1.0))


def test_bce_family_hand_values():
    d_real = torch.tensor([0.0])
    d_fake = torch.tensor([0.0])
    # D(x) = sigmoid(0) = 0.5: -log 0.5 - log(1 - 0.5) = 2 log 2
    assert math.isclose(L.d_bce(d_real, d_fake).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(L.g_nonsaturating(d_fake).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(L.g_minimax(d_fake).item(), math.log(0.5), rel_tol=1e-6)
    logit = torch.tensor([1.3])
    p = 1 / (1 + math.exp(-1.3))
    assert math.isclose(L.g_minimax(logit).item(), math.log(1 - p), rel_tol=1e-5)
    assert math.isclose(L.g_nonsaturating(logit).item(), -math.log(p), rel_tol=1e-5)


def test_wasserstein_and_gradient_penalty():
    assert torch.isclose(L.d_wasserstein(torch.tensor([3.0]), torch.tensor([1.0])), torch.tensor(-2.0))
    w = torch.tensor([3.0, 4.0])  # linear critic: gradient norm 5 everywhere -> (5-1)^2 = 16
    critic = lambda x: x @ w  # noqa: E731
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert torch.isclose(L.gradient_penalty(critic, real, fake), torch.tensor(16.0))


def test_fake_weight_is_an_importance_weighted_fake_term():
    """fake_weight multiplies each fake's term before the mean: hand values for the three D forms, and the
    estimate from stratified draws matches the exact expectation under skewed mode masses."""
    d_real, d_fake, w = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0]), torch.tensor([0.5, 1.5])
    # hinge: real 0.25; fakes relu(1-2)=0, relu(1)=1 -> (0.5*0 + 1.5*1)/2 = 0.75
    assert torch.isclose(L.d_hinge(d_real, d_fake, w), torch.tensor(1.0))
    assert torch.isclose(L.d_wasserstein(d_real, d_fake, w), torch.tensor((0.5 * -2.0 + 0.0) / 2 - 1.25))
    sp = torch.nn.functional.softplus
    assert torch.isclose(L.d_bce(d_real, d_fake, w), sp(-d_real).mean() + (w * sp(d_fake)).mean())
    assert torch.equal(L.d_bce(d_real, d_fake, None), L.d_bce(d_real, d_fake))
    # real_weight the same way on the real term: hinge relu(1-2)=0, relu(0.5)=0.5 -> (0.5*0 + 1.5*0.5)/2
    assert torch.isclose(L.d_hinge(d_real, d_fake, None, w), torch.tensor(0.375 + 0.5))
    assert torch.isclose(L.d_wasserstein(d_real, d_fake, None, w), torch.tensor(-1.0 - (0.5 * 2.0 + 1.5 * 0.5) / 2))
    # two modes at 02:98 with fake logits -1 / +1: the exact fake term under P_Y equals the weighted mean of an even
    # batch (weight = P_Y(y) * k)
    p, logit = torch.tensor([0.02, 0.98]), torch.tensor([-1.0, 1.0])
    exact = (p * sp(logit)).sum()
    y = torch.tensor([0, 1] * 32)
    even = L.d_bce(torch.zeros(1), logit[y], p[y] * 2) - math.log(2)  # the real term of a 0 logit is log 2
    assert torch.isclose(even, exact)


def test_mode_seeking_loss_pairs_only_samples_of_one_condition():
    from lsgan.losses import mode_seeking_loss

    fake = torch.tensor([[0.0, 0.0], [0.5, 0.5], [3.0, 3.0]], requires_grad=True)
    noise = torch.tensor([[0.0], [1.0], [9.0]])
    # only (0, 1) share a condition: image distance 0.5, noise distance 1 -> 1 / 0.5
    loss = mode_seeking_loss(fake, noise, torch.tensor([0, 0, 1]), eps=0.0)
    assert abs(loss.item() - 2.0) < 1e-6
    loss.backward()
    assert fake.grad[0].sum() > 0 > fake.grad[1].sum() and fake.grad[2].abs().sum() == 0  # pushed apart
    assert mode_seeking_loss(fake, noise, torch.tensor([0, 1, 2])).item() == 0.0
    with pytest.raises(ValueError, match="mode_seeking_loss"):
        mode_seeking_loss(fake, noise[:2], torch.tensor([0, 0, 1]))

"""Adversarial losses against hand-computed values."""
import math

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

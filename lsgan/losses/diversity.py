"""Mode seeking (Mao et al., "Mode Seeking Generative Adversarial Networks for Diverse Image
Synthesis", CVPR 2019): two samples of one condition drawn from different noises should differ
in proportion to their noises.

A conditional G is free to ignore its noise: a D that judges one sample at a time (a pair D, a
projection D) cannot see that every sample of a condition is the same image, and an inversion
network (ClusterGAN's E, NEMGAN's h1) reads the noise back from changes too small to see. The
term below measures the change in pixels, so only visible variation lowers it.
"""
from __future__ import annotations

import torch

__all__ = ["mode_seeking_loss"]


def mode_seeking_loss(fake: torch.Tensor, noise: torch.Tensor, groups: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Mean over pairs (i < j) of samples with the same condition, ``groups[i] == groups[j]``, of
    1 / (d_img / d_noise + eps), d = mean absolute difference of images / of noises; G minimises
    it. fake: B×…, noise: B×d (the part of the latent that should vary within a condition),
    groups: int64 B. Zero (with a graph) when no two samples share a condition."""
    if len(fake) != len(noise) or groups.shape != (len(fake),):
        raise ValueError(f"mode_seeking_loss: need B samples, B noises and B group ids, got "
                         f"{tuple(fake.shape)}, {tuple(noise.shape)}, {tuple(groups.shape)}")
    i, j = torch.triu_indices(len(fake), len(fake), offset=1, device=fake.device)
    same = groups[i] == groups[j]
    i, j = i[same], j[same]
    if len(i) == 0:
        return fake.sum() * 0.0
    flat = fake.flatten(1)
    d_img = (flat[i] - flat[j]).abs().mean(dim=1)
    d_noise = (noise[i] - noise[j]).abs().flatten(1).mean(dim=1)
    return (1.0 / (d_img / d_noise.clamp_min(1e-12) + eps)).mean()

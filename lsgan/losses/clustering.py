"""A clustering term on real images, shared by the methods whose encoder assigns clusters
(ClusterGAN's E, NEMGAN's h): two random views of each image must get the same confident
cluster, and the batch must use every cluster.

    L = ½[CE(p_a, p_b) + CE(p_b, p_a)] + w·KL(mean_b p ‖ π)

with p = softmax of the encoder's cluster logits on two augmented views (gradient through
both), the symmetric form of slcGAN's L_aug (Noroozi, 2020, Eq. 5) plus a balance term: with a
uniform π it is log K − H(mean_b p), the balance term of IMSAT (Hu et al., 2017) / IIC (Ji et
al., 2019); a method whose latent carries mode masses (NEMGAN's P_Y) passes them as π. The
consistency part alone is minimised by putting every image in one confident cluster; the
balance part is what rules that out.

A KL balance is met by *soft* predictions: under a skewed π (02:98) every image can get p(small
cluster) = 2 % and none be assigned to it. SeLa (Asano et al., 2020) balances the *assignments*
instead: ``sinkhorn_assignments`` transports a set of images' logits onto clusters of masses π, so a
fraction π_k of the set is assigned to cluster k; between such labellings ``assignment_loss`` trains
the net to predict the labels from random views.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["marginal_entropy", "mean_entropy", "marginal_kl", "view_consistency_loss", "invariant_clustering_loss",
           "sinkhorn_assignments", "assignment_loss"]


def marginal_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(mean_b p_b) of B×K probabilities: log K when the batch spreads evenly, 0 when one cluster."""
    m = p.mean(dim=0)
    return -(m * m.clamp_min(1e-12).log()).sum()


def mean_entropy(logits: torch.Tensor) -> torch.Tensor:
    """mean_b H(softmax(logits_b)) of B×K logits: 0 when every assignment is certain, log K when uniform."""
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


def view_consistency_loss(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """½[CE(softmax(a), softmax(b)) + CE(softmax(b), softmax(a))], mean over the batch, gradient
    through both views."""
    if logits_a.shape != logits_b.shape or logits_a.dim() != 2:
        raise ValueError(f"logits_a / logits_b: need equal B×K shapes, got {tuple(logits_a.shape)} "
                         f"and {tuple(logits_b.shape)}")
    la, lb = F.log_softmax(logits_a, dim=1), F.log_softmax(logits_b, dim=1)
    return -0.5 * ((lb.exp() * la).sum(dim=1) + (la.exp() * lb).sum(dim=1)).mean()


def marginal_kl(p: torch.Tensor, prior: Optional[torch.Tensor] = None, reverse: bool = False) -> torch.Tensor:
    """KL(mean_b p_b ‖ prior) of B×K probabilities; prior None = uniform, i.e. log K − H(mean p).

    ``reverse``: KL(prior ‖ mean_b p_b). Under a skewed prior (02:98) the forward KL of putting every
    image in the large cluster is only −log 0.98 = 0.02 and its gradient vanishes once the softmax
    saturates; the reverse KL grows without bound as a cluster empties and keeps a gradient of
    ≈ prior_k on its logits however saturated (docs/nemgan.md)."""
    if prior is None and not reverse:
        return math.log(p.shape[1]) - marginal_entropy(p)
    prior = torch.full(p.shape[1:], 1.0 / p.shape[1]) if prior is None else prior
    if prior.shape != p.shape[1:]:
        raise ValueError(f"prior: need {p.shape[1]} probabilities, got shape {tuple(prior.shape)}")
    m, q = p.mean(dim=0), prior.to(p)
    if reverse:
        # the marginal is floored at the dtype's smallest normal number, not 1e-12: a collapsed net's
        # empty clusters sit far below 1e-12, and a floor there would take away the gradient that the
        # reverse form exists to keep
        return (q * (q.clamp_min(1e-12).log() - m.clamp_min(torch.finfo(m.dtype).tiny).log())).sum()
    return (m * (m.clamp_min(1e-12).log() - q.clamp_min(1e-12).log())).sum()


def invariant_clustering_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, balance_weight: float,
                              prior: Optional[torch.Tensor] = None, reverse_kl: bool = False):
    """(consistency + balance_weight·KL(marginal ‖ prior), parts) for the cluster logits of two
    views of one batch; the marginal is over both views, prior None = uniform; ``reverse_kl``:
    KL(prior ‖ marginal) instead. Parts are detached, for logging."""
    consistency = view_consistency_loss(logits_a, logits_b)
    p = torch.cat([logits_a, logits_b]).softmax(dim=1)
    balance = marginal_kl(p, prior, reverse=reverse_kl)
    loss = consistency + float(balance_weight) * balance
    return loss, {"consistency": consistency.detach(), "marginal_kl": balance.detach()}


@torch.no_grad()
def sinkhorn_assignments(logits: torch.Tensor, prior: Optional[torch.Tensor] = None, eps: float = 0.05,
                         iters: int = 3) -> torch.Tensor:
    """B×K assignments of B samples to K clusters: rows sum to 1, column k sums to ≈ B·prior_k.

    The entropic transport of exp(logits / eps) (log-domain Sinkhorn-Knopp, ``iters`` rounds, ending
    on the rows so each sample's row is exact); smaller ``eps`` gives harder assignments. prior None
    = uniform. No gradient: these are targets."""
    if logits.dim() != 2:
        raise ValueError(f"logits: need a B×K tensor, got shape {tuple(logits.shape)}")
    b, k = logits.shape
    q = torch.full((k,), 1.0 / k) if prior is None else prior
    if q.shape != (k,):
        raise ValueError(f"prior: need {k} probabilities, got shape {tuple(q.shape)}")
    log_q = q.to(logits.device, torch.float32).clamp_min(1e-12).log()
    log_p = logits.float() / float(eps)
    for _ in range(int(iters)):
        log_p = log_p + (log_q - log_p.logsumexp(dim=0))        # cluster k holds mass prior_k
        log_p = log_p - log_p.logsumexp(dim=1, keepdim=True)    # each sample holds mass 1
    return log_p.exp().to(logits.dtype)


def assignment_loss(logits_a: torch.Tensor, logits_b: torch.Tensor, labels: torch.Tensor):
    """(½[CE(a, labels) + CE(b, labels)], parts): two views of labelled images predict their labels
    (SeLa's step between labellings). Parts (detached): ``assign_ce`` and ``view_agreement``, the share
    of images whose two views get the same argmax."""
    if logits_a.shape != logits_b.shape or logits_a.dim() != 2 or labels.shape != logits_a.shape[:1]:
        raise ValueError(f"logits_a / logits_b / labels: need B×K, B×K and B, got {tuple(logits_a.shape)}, "
                         f"{tuple(logits_b.shape)} and {tuple(labels.shape)}")
    loss = 0.5 * (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_b, labels))
    agree = (logits_a.argmax(dim=1) == logits_b.argmax(dim=1)).float().mean()
    return loss, {"assign_ce": loss.detach(), "view_agreement": agree.detach()}

"""Training the two learned extractors (CLI: ``python -m lsgan.train_extractor``).

- ``train_rotnet``: self-supervised rotation prediction (Gidaris et al. 2018). Every image of
  a batch is shown at 0/90/180/270° and the net classifies the angle; no labels are read.
- ``train_supervised``: plain classification on the given (possibly noisy) labels.

Both train :class:`BackboneClassifier` with Adam for a fixed number of steps on uint8
images (N×C×H×W, square), sampling batches from a seeded generator, and return the net in
eval mode with a history: the loss on a fixed probe batch before and after training (a
comparable number, unlike noisy per-step losses) and held-out accuracy when eval data are given.
BatchNorm statistics are re-estimated with the final weights before the net is returned.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from lsgan.features.extractors import BackboneClassifier

ROTATIONS = 4


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()


def rotation_batch(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(4B images: every image at 0, 90, 180, 270°; 4B targets 0..3)."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(ROTATIONS)])
    targets = torch.arange(ROTATIONS, device=x.device).repeat_interleave(len(x))
    return rotated, targets


def _rotnet_loss(net, x):
    xr, t = rotation_batch(x)
    logits = net(xr)
    return F.cross_entropy(logits, t), (logits.argmax(1) == t).float().mean()


def _supervised_loss(net, x, y):
    logits = net(x)
    return F.cross_entropy(logits, y), (logits.argmax(1) == y).float().mean()


def _fit(net, loss_fn, data: torch.Tensor, labels: Optional[torch.Tensor], steps: int, batch_size: int, lr: float,
         seed: int, device, log_every: int, name: str) -> Dict[str, object]:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(device)
    g = torch.Generator().manual_seed(int(seed))
    probe_idx = torch.randperm(len(data), generator=g)[:min(len(data), 256)]
    probe = (_as_float(data[probe_idx]).to(device),) + (() if labels is None else (labels[probe_idx].to(device),))

    def probe_loss() -> float:
        net.eval()
        with torch.no_grad():
            return float(loss_fn(net, *probe)[0])

    before = probe_loss()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    t0, running = time.perf_counter(), []
    for step in range(1, int(steps) + 1):
        idx = torch.randint(len(data), (min(int(batch_size), len(data)),), generator=g)
        args = (_as_float(data[idx]).to(device),) + (() if labels is None else (labels[idx].to(device),))
        loss, acc = loss_fn(net, *args)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append((float(loss.detach()), float(acc)))
        if log_every and (step % log_every == 0 or step == steps):
            l, a = (sum(v) / len(running) for v in zip(*running))
            print(f"[lsgan.train_extractor] {name} step {step}/{steps}: loss {l:.4f} acc {a:.3f} "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
            running = []
    _recalibrate_batchnorm(net, data, batch_size, g, device, rotate=labels is None)
    after = probe_loss()
    net.eval().cpu()
    return {"probe_loss_before": before, "probe_loss_after": after, "steps": int(steps),
            "seconds": time.perf_counter() - t0}


@torch.no_grad()
def _recalibrate_batchnorm(net, data: torch.Tensor, batch_size: int, g: torch.Generator, device, rotate: bool,
                           batches: int = 20) -> None:
    """Re-estimate BatchNorm running statistics as exact averages over ``batches`` training batches.

    Why: running statistics are exponential averages (momentum 0.1) started at mean 0 / var 1.
    After a short run they still carry part of that start, and the mismatch compounds over the
    eight BN layers until the eval-mode net outputs a constant. Exact averages with the final
    weights make the eval-mode extractor match what was trained, whatever the number of steps.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    net.train()
    for _ in range(batches):
        x = _as_float(data[torch.randint(len(data), (min(int(batch_size), len(data)),), generator=g)]).to(device)
        net(rotation_batch(x)[0] if rotate else x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    net.eval()


def _eval_acc(net, loss_fn, data, labels, batch_size=512) -> float:
    correct, total = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = _as_float(data[i:i + batch_size])
            args = (x,) + (() if labels is None else (labels[i:i + batch_size],))
            n = len(x) * (ROTATIONS if labels is None else 1)
            correct += float(loss_fn(net, *args)[1]) * n
            total += n
    return correct / max(total, 1)


def train_rotnet(images: torch.Tensor, width: int = 16, steps: int = 1000, batch_size: int = 64, lr: float = 1e-3,
                 seed: int = 0, device=None, eval_images: Optional[torch.Tensor] = None,
                 log_every: int = 100) -> Tuple[BackboneClassifier, Dict[str, object]]:
    """RotNet on square ``images`` (uint8 or [-1, 1] float, N×C×S×S); no labels are used."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"images: rotation prediction needs square images, got {tuple(images.shape[-2:])}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = BackboneClassifier(int(images.shape[1]), int(width), ROTATIONS)
    hist = _fit(net, _rotnet_loss, images, None, steps, batch_size, lr, seed, device, log_every, "rotnet")
    if eval_images is not None:
        hist["eval_rotation_acc"] = _eval_acc(net, _rotnet_loss, eval_images[:2000], None)
    return net, hist


def train_supervised(images: torch.Tensor, labels: torch.Tensor, num_classes: int, width: int = 16,
                     steps: int = 1000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0, device=None,
                     eval_images: Optional[torch.Tensor] = None, eval_labels: Optional[torch.Tensor] = None,
                     log_every: int = 100) -> Tuple[BackboneClassifier, Dict[str, object]]:
    """Classifier on ``labels`` (noisy ones for the robustness study); eval accuracy uses clean ``eval_labels``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = BackboneClassifier(int(images.shape[1]), int(width), int(num_classes))
    hist = _fit(net, _supervised_loss, images, labels.long(), steps, batch_size, lr, seed, device, log_every,
                "supervised")
    if eval_images is not None and eval_labels is not None:
        hist["eval_clean_acc"] = _eval_acc(net, _supervised_loss, eval_images, eval_labels.long())
    return net, hist

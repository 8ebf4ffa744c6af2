"""NEMGAN: noise-engineered mode-matching GAN (Mishra et al., "Unsupervised conditional
generation using noise engineered mode matching GAN", ICLR 2019 submission, arXiv 1811.03692).

The latent is engineered (``prior=engineered``): a mode y ~ P_Y, z = code(y) + uniform noise,
so the modes of P_Z do not overlap and P_Y encodes a guess of the data's class proportions.
An inversion network h = h2∘h1 (h1: image → z, h2: z → mode logits) is trained *together with*
g on generated samples only:

    min_{g,h}  L_adv(g) + λ_norm ‖z − h1(g(z))‖_p + λ_mode CE(y, h2(h1(g(z))))
    min_d      L_adv(d)

so that the modes of P_Z are carried into the generated distribution (mode matching). After
training, h clusters real images (``condition_of``), sampling z from one mode generates that
mode (``sample(n, condition=mode)``) and g(h1(x)) reconstructs x (``reconstruct``).

Ablations (``loss=``): full | no_h1 (no norm term) | no_h2 (no mode-matching term) | gan_only
(neither: a plain GAN fed the engineered latent). A removed term is not computed at all.

Semi-supervision (``method.semi_fraction > 0``, off by default) is the only path where labels
touch training: at fit start a fixed, seeded ``semi_fraction`` of each class of the training
split is drawn, and every ``semi_every`` iterations h is trained for one pass over it with
class c taken as mode c.

The end of this module holds the evaluation and mode-matching report helpers (the paper's
Fig. 2 distance histograms, the mode × class KL matrix, the benchmark numbers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from lsgan.config import ConfigError, MethodConfig, check_choice
from lsgan.data.batch import Batch
from lsgan.losses import ADVERSARIAL, gradient_penalty, mode_seeking_loss
from lsgan.losses.nemgan import latent_norm_loss, mode_matching_loss, predicted_mode_kl
from lsgan.methods import register
from lsgan.methods.base import GANMethod, even_conditions, inference
from lsgan.nets import SharedTrunkEncoder, build_discriminator, build_encoder, build_generator, score_and_encode
from lsgan.priors import build_prior

# loss name -> the terms (besides the adversarial one) that g and h minimise
TERMS = {"full": ("norm", "mode"), "no_h1": ("mode",), "no_h2": ("norm",), "gan_only": ()}


@dataclass
class NEMGANConfig(MethodConfig):
    name: str = "nemgan"
    z_dim: int = 50                  # not used: the latent is the prior's (prior.dim)
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999])
    adv_loss: str = "ns"             # adversarial form: hinge | ns | minimax | wgan_gp
    norm_weight: float = 1.0         # λ of the norm loss ‖z − h1(g(z))‖_p
    norm_p: float = 1.0              # p of that norm (paper: L1)
    mode_weight: float = 1.0         # λ of the mode-matching cross-entropy
    mode_seeking: float = 0.0        # weight of MSGAN's mode-seeking term over same-mode pairs; 0 = off (paper)
    encoder: str = "separate"        # separate: h1 its own net (paper) | shared: a head on D's trunk | infogan: and D's trunk learns the codes too
    am_margin: float = 0.0           # 0: softmax head; > 0: cosine head with AM-softmax margin
    am_scale: float = 10.0           # AM-softmax scale s (only with am_margin > 0)
    h2_width: int = 64               # hidden units of h2 (latent → mode MLP)
    h2_depth: int = 1                # hidden layers of h2 (0 = linear)
    lr_h: float = 2e-4               # Adam learning rate of h1 and h2
    semi_fraction: float = 0.0       # labelled fraction per class for semi-supervision; 0 = off
    semi_every: int = 100            # iterations between semi-supervised passes over that subset


class ModeHead(nn.Module):
    """h2: latent → k mode logits, an MLP; with ``cosine`` the logits are cosine similarities
    between the normalised features and normalised class weights (AM-softmax's head)."""

    def __init__(self, in_dim: int, k: int, width: int = 64, depth: int = 1, cosine: bool = False):
        super().__init__()
        layers, prev = [], in_dim
        for _ in range(depth):
            layers += [nn.Linear(prev, width), nn.LeakyReLU(0.2)]
            prev = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(prev, k, bias=not cosine)
        self.cosine = cosine

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.body(z)
        if self.cosine:
            return F.linear(F.normalize(h, dim=1), F.normalize(self.head.weight, dim=1))
        return self.head(h)


def labelled_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a fixed, seeded ``fraction`` of each class (at least one per class)."""
    gen = torch.Generator().manual_seed(int(seed))
    picked = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        n_c = max(1, int(round(fraction * len(idx))))
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:n_c]])
    return torch.cat(picked).sort().values


@register
class NEMGAN(GANMethod):
    Config = NEMGANConfig
    LOSSES = tuple(TERMS)

    @classmethod
    def check_config(cls, cfg) -> None:
        m = cfg.method
        if cfg.prior.name != "engineered":
            raise ConfigError(f"prior={cfg.prior.name} is not accepted by method=nemgan; accepted values: engineered")
        check_choice("method.adv_loss", m.adv_loss, tuple(ADVERSARIAL))
        check_choice("method.encoder", m.encoder, ("separate", "shared", "infogan"))
        if m.norm_p <= 0:
            raise ConfigError(f"method.norm_p={m.norm_p}: must be > 0 (1 = L1, 2 = L2)")
        for key in ("norm_weight", "mode_weight", "am_margin", "mode_seeking"):
            if m[key] < 0:
                raise ConfigError(f"method.{key}={m[key]}: must be >= 0")
        if m.am_scale <= 0:
            raise ConfigError(f"method.am_scale={m.am_scale}: must be > 0")
        if m.h2_width < 1 or m.h2_depth < 0:
            raise ConfigError(f"method.h2_width={m.h2_width}, method.h2_depth={m.h2_depth}: "
                              f"need width >= 1 and depth >= 0")
        if not 0 <= m.semi_fraction <= 1:
            raise ConfigError(f"method.semi_fraction={m.semi_fraction}: must be in [0, 1] (0 = off)")
        if m.semi_every < 1:
            raise ConfigError(f"method.semi_every={m.semi_every}: must be >= 1")
        if m.semi_fraction > 0 and "mode" not in TERMS[cfg.loss.name]:
            raise ConfigError(f"method.semi_fraction={m.semi_fraction} trains h2, which loss={cfg.loss.name} "
                              f"removes; accepted with loss: full, no_h1")

    # ------------------------------------------------------------------ networks
    def build(self) -> None:
        self.prior = build_prior(self.cfg.prior)
        self.terms = TERMS[self.cfg.loss.name]
        shape = self.data_info.shape
        self.G = build_generator(self.cfg.model, self.prior.dim, shape)
        self.D = build_discriminator(self.cfg.model, shape)
        if self.mcfg.encoder in ("shared", "infogan"):
            self.h1 = SharedTrunkEncoder(self.D, self.prior.dim)
        else:
            self.h1 = build_encoder(self.cfg.model, shape, self.prior.dim)
        self.h2 = ModeHead(self.prior.dim, self.prior.k, self.mcfg.h2_width, self.mcfg.h2_depth,
                           cosine=self.mcfg.am_margin > 0)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL[self.mcfg.adv_loss]
        self.register_buffer("codes", self.prior.codes(), persistent=False)
        self.semi_index: Optional[torch.Tensor] = None  # labelled subset, drawn at fit start when semi is on
        self._semi_due = False

    @property
    def latent_dim(self) -> int:
        return self.prior.dim

    @property
    def semi_on(self) -> bool:
        return self.mcfg.semi_fraction > 0

    def optimizer_groups(self) -> Dict[str, Dict]:
        betas = tuple(self.mcfg.betas)
        h_params = list(self.h1.parameters()) + list(self.h2.parameters())
        # g and h minimise one objective, so one optimizer steps both (h with its own lr)
        return {
            "d": dict(params=self.D.parameters(), lr=self.mcfg.lr_d, betas=betas),
            "g": dict(params=[{"params": list(self.G.parameters())}, {"params": h_params, "lr": self.mcfg.lr_h}],
                      lr=self.mcfg.lr_g, betas=betas),
        }

    # ------------------------------------------------------------------ training
    def draw_latent(self, n: int, modes=None, generator: Optional[torch.Generator] = None):
        """(z, y): n engineered latents and their modes (modes drawn from P_Y when None)."""
        return self.prior.sample(n, modes=modes, generator=generator, device=self.device)

    def d_step(self, batch: Batch):
        n = len(batch)
        z, y = self.draw_latent(n)
        with torch.no_grad():
            fake = self.G(z)
        d_real = self.D(batch.x)
        code = None
        if self.mcfg.encoder == "infogan" and self.terms:
            # InfoGAN: Q's body is D's, so D's trunk also learns to invert (detached) fakes
            d_fake, z_hat = score_and_encode(self.D, self.h1, fake)
            code = self.inversion_loss(z, y, z_hat)[0]
        else:
            d_fake = self.D(fake)
        loss = self.d_loss_fn(d_real, d_fake)
        logs = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        if code is not None:
            loss = loss + code
            logs["d_code"] = code.detach()
        if self.mcfg.adv_loss == "wgan_gp":
            gp = gradient_penalty(self.D, batch.x, fake)
            loss = loss + self.cfg.loss.gp_weight * gp
            logs["gp"] = gp.detach()
        self.step_opt("d", loss)
        return {"loss_d": loss.detach(), **logs, **self._maybe_semi()}

    def generator_objective(self, z: torch.Tensor, y: torch.Tensor):
        """(loss, logs): the joint objective of g and h on latents z of modes y. Only the terms
        of the configured ablation are computed."""
        fake = self.G(z)
        # h1 is evaluated only when an inversion term uses it (loss=gan_only trains no h)
        d_fake, z_hat = score_and_encode(self.D, self.h1, fake) if self.terms else (self.D(fake), None)
        adv = self.g_loss_fn(d_fake)
        loss, logs = adv, {"g_adv": adv.detach()}
        if float(self.mcfg.mode_seeking) > 0:
            # same-mode pairs of the batch; their latents differ only in the uniform noise
            seek = mode_seeking_loss(fake, z / float(self.cfg.prior.noise_width), y)
            loss = loss + float(self.mcfg.mode_seeking) * seek
            logs["mode_seeking"] = seek.detach()
        if not self.terms:
            return loss, logs
        inv, inv_logs = self.inversion_loss(z, y, z_hat)
        return loss + inv, {**logs, **inv_logs}

    def inversion_loss(self, z: torch.Tensor, y: torch.Tensor, z_hat: torch.Tensor):
        """(weighted norm + mode terms of the configured ablation, logs) for h1's output z_hat."""
        loss, logs = z_hat.new_zeros(()), {}
        if "norm" in self.terms:
            norm = latent_norm_loss(z, z_hat, self.mcfg.norm_p)
            loss = loss + self.mcfg.norm_weight * norm
            logs["norm"] = norm.detach()
        if "mode" in self.terms:
            logits = self.h2(z_hat)
            mode = mode_matching_loss(logits, y, self.mcfg.am_margin, self._logit_scale)
            loss = loss + self.mcfg.mode_weight * mode
            logs["mode"] = mode.detach()
            logs["mode_acc"] = (logits.argmax(1) == y).float().mean().detach()
            logs["mode_kl"] = predicted_mode_kl(self.prior.weights, logits.detach())
        return loss, logs

    @property
    def _logit_scale(self) -> float:
        return self.mcfg.am_scale if self.mcfg.am_margin > 0 else 1.0

    def g_step(self, batch: Batch):
        z, y = self.draw_latent(len(batch))
        loss, logs = self.generator_objective(z, y)
        self.step_opt("g", loss)
        return {"loss_g": loss.detach(), **logs, **self._maybe_semi()}

    # ------------------------------------------------------------------ semi-supervision
    def on_fit_start(self) -> None:
        if not self.semi_on:
            return  # labels are never read
        train_set = self.trainer.datamodule.train_set
        if train_set.labels is None:
            raise ConfigError(f"method.semi_fraction={self.mcfg.semi_fraction}: needs a labelled dataset, "
                              f"dataset={self.cfg.data.name} has no labels")
        if train_set.num_classes != self.prior.k:
            raise ConfigError(f"method.semi_fraction={self.mcfg.semi_fraction}: maps class c to mode c, so prior.k "
                              f"({self.prior.k}) must equal the dataset's classes ({train_set.num_classes})")
        self.semi_index = labelled_subset(train_set.labels, self.mcfg.semi_fraction, int(self.cfg.seed))

    def training_step(self, batch: Batch, batch_idx: int):
        # one semi pass every semi_every iterations; done by whichever of d_step / g_step runs
        # first this iteration (at least one always runs under any n_dis / n_gen schedule)
        self._semi_due = self.semi_on and self.iteration % int(self.mcfg.semi_every) == 0
        return super().training_step(batch, batch_idx)

    def _maybe_semi(self) -> Dict[str, torch.Tensor]:
        if not self._semi_due:
            return {}
        self._semi_due = False
        return self.semi_step()

    def semi_step(self) -> Dict[str, torch.Tensor]:
        """One shuffled pass of h over the labelled subset (class c = mode c)."""
        train_set = self.trainer.datamodule.train_set
        bs = int(self.cfg.data.batch_size)
        order = self.semi_index[torch.randperm(len(self.semi_index))]
        total, correct = 0.0, 0
        for idx in order.split(bs):
            x = train_set.images(idx).to(self.device)
            y = train_set.labels[idx].to(self.device)
            logits = self.h2(self.h1(x))
            loss = mode_matching_loss(logits, y, self.mcfg.am_margin, self._logit_scale)
            self.step_opt("g", loss)  # only h gets gradients: G is not in this graph
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        n = len(order)
        return {"semi_loss": torch.tensor(total / n), "semi_acc": torch.tensor(correct / n)}

    # ------------------------------------------------------------------ generate / infer
    @property
    def num_conditions(self) -> int:
        return self.prior.k

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        """n samples of mode ``condition`` (int or B ints); condition=None draws modes from P_Y,
        the model's own distribution (so imbalanced priors give imbalanced samples)."""
        g = self.generator if use_ema else self.G
        return g(self.draw_latent(n, condition)[0])

    @inference
    def sample_with_z(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        """Samples from standard-normal noise ``z`` (the base's fixed grid noise): z is mapped
        through the normal CDF to the prior's U(±noise_width) noise and added to the code of
        ``condition`` (all modes evenly when None), so grid rows share their noise."""
        z = z.to(self.device)
        k = self.prior.k
        modes = (even_conditions(len(z), k, self.device) if condition is None
                 else torch.as_tensor(condition, device=self.device).long().reshape(-1).expand(len(z)))
        if ((modes < 0) | (modes >= k)).any():
            raise ValueError(f"condition: modes must be in 0..{k - 1}")
        noise = (torch.special.ndtr(z) * 2 - 1) * float(self.cfg.prior.noise_width)
        return self.generator(self.codes[modes] + noise)

    @inference
    def encode(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """h1(x): the latent of each image (B×prior.dim)."""
        return torch.cat([self.h1(c.to(self.device)) for c in x.split(batch_size)])

    @inference
    def condition_of(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """argmax h2(h1(x)): the mode that generates images like x. With loss=no_h2, h2 is never
        trained, so the mode is the nearest engineered code to h1(x) instead."""
        if not self.terms:
            raise NotImplementedError("loss=gan_only trains no inversion network h, so it has no condition_of")
        z_hat = self.encode(x, batch_size)
        if "mode" in self.terms:
            return self.h2(z_hat).argmax(1)
        return torch.cdist(z_hat, self.codes).argmin(1)

    @inference
    def reconstruct(self, x: torch.Tensor, use_ema: bool = True, batch_size: int = 500) -> torch.Tensor:
        """g(h1(x)): inference by inversion."""
        g = self.generator if use_ema else self.G
        return torch.cat([g(z) for z in self.encode(x, batch_size).split(batch_size)])


# =========================================================================== reports
# Evaluation and mode-matching reports of a trained nemgan (metrics imported lazily, so the
# method registry stays light):
# * class_mean_distances / nearest_mean_agreement / plot_distance_histograms — the paper's
#   Fig. 2: per mode, histograms of the distances of its samples to every mode's mean, in the
#   latent space (z) and in the generated space (g(z): pixels or evaluator features). Mode
#   matching works when the generated histograms separate like the latent ones.
# * mode_matching_report — draws the samples, writes that figure and, given real data, the
#   generated-mode × real-class k-NN KL matrix (lsgan.metrics.classwise_knn_kl_matrix).
# * evaluate_nemgan — the numbers of the benchmark and the experiment collectors.
# * mnist_evaluator — the cached MNIST evaluator those numbers use (trained once if absent).
def _toy_centers(name: str) -> Optional[np.ndarray]:
    """Mode centres of a 2-D toy dataset (as its reader draws them), None for other data."""
    from lsgan.metrics import grid_centers, ring_centers

    if name == "ring8":
        return ring_centers(8, 2.0)
    return grid_centers(5, 2.0) if name == "grid25" else None


# --------------------------------------------------------------------------- Fig. 2
def class_mean_distances(features, labels, k: int) -> np.ndarray:
    """N × k Euclidean distances of every sample to the mean of each class 0..k−1 (NaN columns
    for classes without samples). features: N×d (flattened if more dims), labels: N ints."""
    f = torch.as_tensor(features).detach().cpu().double().flatten(1)
    y = torch.as_tensor(labels).detach().cpu().long()
    means = torch.full((k, f.shape[1]), float("nan"), dtype=torch.float64)
    for c in range(k):
        if (y == c).any():
            means[c] = f[y == c].mean(0)
    return torch.cdist(f, means).numpy()


def nearest_mean_agreement(distances: np.ndarray, labels) -> float:
    """Fraction of samples whose nearest class mean is their own class's (1.0 = separated modes)."""
    d = np.where(np.isnan(distances), np.inf, distances)
    return float(np.mean(d.argmin(axis=1) == np.asarray(torch.as_tensor(labels).cpu())))


def plot_distance_histograms(latent_dist: np.ndarray, latent_y, gen_dist: np.ndarray, gen_y, path: str,
                             bins: int = 40, max_cols: int = 10) -> str:
    """Two rows (latent, generated) × one panel per class mean; each panel overlays one
    histogram per mode of the distances of that mode's samples to the panel's mean."""
    from lsgan.metrics.clustering import agg_figure

    k = min(latent_dist.shape[1], max_cols)
    fig = agg_figure(figsize=(2.2 * k + 1, 4.6))
    rows = (("latent z", latent_dist, np.asarray(latent_y)), ("generated g(z)", gen_dist, np.asarray(gen_y)))
    for r, (name, dist, y) in enumerate(rows):
        for j in range(k):
            ax = fig.add_subplot(2, k, r * k + j + 1)
            finite = dist[:, j][np.isfinite(dist[:, j])]
            if len(finite) == 0:
                continue
            edges = np.linspace(finite.min(), finite.max() + 1e-9, bins + 1)
            for i in range(dist.shape[1]):
                if (y == i).any():
                    ax.hist(dist[y == i, j], bins=edges, alpha=0.5, label=f"mode {i}")
            ax.set_title(f"{name}: to mean {j}", fontsize=8)
            ax.tick_params(labelsize=6)
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 1 - 0.9 / (2.2 * k + 1), 1))
    fig.savefig(path, dpi=110)
    return path


@torch.no_grad()
def mode_matching_report(method, out_dir: str, n_per_mode: int = 200,
                         feature_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                         real_features=None, real_labels=None, seed: int = 0) -> Dict[str, object]:
    """Fig. 2 (and, with real data, the mode × class KL matrix) for a trained nemgan.

    ``feature_fn`` maps generated samples to the space the generated-side distances are taken
    in (default: the flattened samples); ``real_features`` must live in the same space.
    Returns {"latent_agreement", "generated_agreement", "kl_matrix" (or None), "figures"}.
    """
    os.makedirs(out_dir, exist_ok=True)
    k = method.num_conditions
    modes = torch.arange(k).repeat_interleave(n_per_mode)
    gen = torch.Generator().manual_seed(seed)  # own RNG: a report never moves the training RNG
    z, y = method.prior.sample(len(modes), modes=modes, generator=gen)
    x = torch.cat([method.generator(c.to(method.device)).cpu() for c in z.split(500)])
    feats = feature_fn(x) if feature_fn is not None else x.flatten(1)
    d_lat, d_gen = class_mean_distances(z, y, k), class_mean_distances(feats, y, k)
    figures = [plot_distance_histograms(d_lat, y, d_gen, y, str(Path(out_dir) / "mode_distances.png"))]
    out: Dict[str, object] = {"latent_agreement": nearest_mean_agreement(d_lat, y),
                              "generated_agreement": nearest_mean_agreement(d_gen, y), "kl_matrix": None}
    if real_features is not None and real_labels is not None:
        from lsgan.metrics import classwise_knn_kl_matrix
        from lsgan.reports import matrix_picture

        labels = torch.as_tensor(real_labels).long()
        C = int(labels.max()) + 1
        kl = classwise_knn_kl_matrix(feats, y, real_features, labels, K=k, C=C, seed=seed)
        kl_png = matrix_picture(kl, Path(out_dir) / "mode_class_kl.png", "KL(generated mode ‖ real class)")
        figures.append(str(kl_png))
        out["kl_matrix"] = kl
    out["figures"] = figures
    return out


# --------------------------------------------------------------------------- numbers
def balanced_cluster_acc(y_true, y_pred, K: int, C: int) -> float:
    """Mean per-class recall under the best one-to-one cluster → class map (Hungarian on the
    recall matrix); classes left unmatched (K < C) count 0. Unlike plain ACC it does not reward
    putting everything in the majority class: at 02:98 that scores 0.98 ACC but 0.5 here."""
    from scipy.optimize import linear_sum_assignment

    from lsgan.metrics import contingency

    m = contingency(y_pred, y_true, K, C).astype(np.float64)  # K × C
    recall = m / np.clip(m.sum(axis=0, keepdims=True), 1, None)
    rows, cols = linear_sum_assignment(recall, maximize=True)
    present = m.sum(axis=0) > 0
    return float(recall[rows, cols].sum() / max(1, present.sum()))


def mnist_evaluator(data_root: str, cache_dir: str = "~/.cache/lsgan", epochs: float = 1.0, log=print):
    """The cached 10-class MNIST evaluator at 32 px (trained on the training split and cached
    when absent; its test accuracy is in ``meta["test_acc"]``)."""
    from lsgan.metrics import evaluator_cache_path, load_evaluator, save_evaluator, train_evaluator

    path = evaluator_cache_path(cache_dir, "mnist", 32, 1)
    if os.path.isfile(path):
        ev = load_evaluator(path)
        if ev.meta.get("n_classes") != 10:
            raise ValueError(f"{path}: holds a {ev.meta.get('n_classes')}-class evaluator; the nemgan numbers "
                             f"need the 10-class MNIST one (move that file away to retrain)")
        return ev
    with np.load(Path(data_root) / "mnist.npz") as f:
        xtr, ytr, xte, yte = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    ev = train_evaluator(xtr, ytr, xte, yte, dataset="mnist", size=32, channels=1, epochs=epochs, log=log)
    save_evaluator(ev, path)
    return ev


@torch.no_grad()
def evaluate_nemgan(method, datamodule, evaluator=None, class_ids: Optional[Sequence[int]] = None,
                    n_gen: int = 2000, seed: int = 0) -> Dict[str, float]:
    """Numbers for a trained nemgan on the datamodule's evaluation split.

    - h_acc / h_bal_acc / h_nmi / h_ari: clustering of real eval images by ``condition_of``
      (Hungarian ACC; balanced = mean per-class recall, which matters on imbalanced splits).
    - images with an ``evaluator``: cond_acc (generated samples of each mode, classified, modes
      mapped to classes as in ``cluster_conditional_accuracy``), classifier_fid (n_gen samples
      drawn from P_Y vs n_gen real eval images, on evaluator features). ``class_ids``: the
      evaluator's class ids of the dataset's classes 0..C−1 (data.classes), e.g. [0, 4];
      predictions are restricted to them.
    - 2-D toys (ring8 / grid25): modes, high_quality, reverse_kl of n_gen samples (metrics.modes).
    - stacked_mnist with the MNIST evaluator: modes (of 1000) and stacked_kl of n_gen samples.
    """
    from lsgan.metrics import (classifier_fid, cluster_conditional_accuracy, clustering_report, stacked_mnist_modes,
                               toy_mode_stats)

    method.eval()
    torch.manual_seed(seed)  # sampling below uses the global RNG; make the numbers repeatable
    ev_set = datamodule.eval_set
    out: Dict[str, float] = {}
    name = method.cfg.data.name
    if name == "stacked_mnist":
        if evaluator is not None:  # each channel read by the MNIST evaluator: 1000 possible modes
            fake = torch.cat([method.sample(min(500, n_gen - s)).cpu() for s in range(0, n_gen, 500)])
            digits = torch.stack([evaluator.predict(fake[:, c:c + 1]) for c in range(3)], dim=1)
            stats = stacked_mnist_modes(digits)
            out.update(modes=stats["modes"], n_modes=1000, stacked_kl=stats["kl"])
        return out  # h(x) against 1000 stack labels with k modes says little
    x_real, y_real = ev_set.images(), ev_set.clean_labels
    if method.terms:
        pred = method.condition_of(x_real).cpu()
        rep = clustering_report(y_real, pred)
        out.update(h_acc=rep["acc"], h_bal_acc=balanced_cluster_acc(y_real, pred, method.num_conditions,
                                                                     ev_set.num_classes),
                   h_nmi=rep["nmi"], h_ari=rep["ari"])
    centers = _toy_centers(name)
    if centers is not None:
        samples = method.sample(n_gen).cpu()
        stats = toy_mode_stats(samples, centers, float(method.cfg.data.std))
        out.update(modes=stats["modes"], n_modes=stats["n_modes"], high_quality=stats["high_quality"],
                   reverse_kl=stats["reverse_kl"])
    elif evaluator is not None:
        k, C = method.num_conditions, ev_set.num_classes
        ids = list(range(C)) if class_ids is None else list(class_ids)
        modes = torch.arange(k).repeat_interleave(max(1, n_gen // k))
        fake = torch.cat([method.sample(len(m), condition=m.to(method.device)).cpu() for m in modes.split(500)])
        pred = evaluator.logits(fake)[:, ids].argmax(1)
        out["cond_acc"] = cluster_conditional_accuracy(modes, pred, k, C)["accuracy"]
        n = min(n_gen, len(x_real))
        real = x_real[torch.randperm(len(x_real))[:n]]
        fake = torch.cat([method.sample(min(500, n - s)).cpu() for s in range(0, n, 500)])
        out["classifier_fid"] = classifier_fid(evaluator, fake, real)
    return out

"""slcGAN: Self-labeled Conditional GANs (Noroozi, 2020).

Three players. G(z, c) draws c uniformly from K pseudo-classes and is conditioned on it through
class-conditional BatchNorm; a clustering network C labels real images, p(y|x) = softmax(C(x));
D(x, y) returns a unary score u (image only) and a joint, projection score s (image with its
label), BigBiGAN style. Real pairs are (x, p(y|x)), fake pairs (G(z, c), onehot(c)).

Per iteration (their Algorithm 1, hinge loss, all weights 1 by default):

* D (``n_dis`` = 2 updates per G update): mean[relu(1−u_r) + relu(1−s_r) + relu(1+u_f) + relu(1+s_f)];
* G: mean[−u_f − s_f] + L_mi, L_mi = CE(c, softmax(C(G(z, c)))) — C is frozen in that forward,
  so L_mi reaches G only;
* C, right after G, on real images only: mean[s_r] + L_aug, L_aug = Σ −q log p with
  p = softmax(C(x)), q = softmax(C(T(x))) (q a stop-gradient target by default, see
  ``lsgan.losses.slcgan.slcgan_aug_loss``).

``loss=no_mi`` / ``loss=no_aug`` drop L_mi / L_aug. C is a standalone :class:`Clusterer` with its
own optimizer ("c") and its own state file (``<run_dir>/clusterer.pt`` at the end of training).
The paper's figures (cluster sizes of C against k-means on C's penultimate features, their Fig. 4;
real images per cluster next to generated ones, Fig. 1) are drawn by ``lsgan.reports.slcgan``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lsgan.augment import MultiViewAugment
from lsgan.errors import ConfigError, check_choice
from lsgan.data.batch import Batch
from lsgan.io import atomic_torch_save
from lsgan.losses import (marginal_entropy, marginal_kl, mean_entropy, slcgan_aug_loss, slcgan_c_adversarial, slcgan_d_hinge,
                          slcgan_g_hinge, slcgan_mi_loss)
from lsgan.methods.registry import register
from lsgan.methods.base import GANMethod, MethodConfig, inference
from lsgan.methods.clustering_term import (BalanceConfig, MinedNeighbours, check_balance_config, clustering_inputs,
                                          fit_method_neighbours, reads_mined_features)
from lsgan.nets import build_discriminator, build_encoder, build_generator
from lsgan.nets.ema import EMA, ema_decay_at
from lsgan.nets.feature_head import FeatureHead
from lsgan.nets.modes import frozen

CLUSTERER_FILE = "clusterer.pt"
C_NETS = ("own", "extractor")  # method.c_net


@dataclass
class SLCGANConfig(MethodConfig):
    name: str = "slcgan"
    num_clusters: int = 10          # K pseudo-classes (= num_conditions)
    z_dim: int = 128                # latent size
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    lr_c: float = 1e-4              # Adam learning rate of the clustering network C
    betas: List[float] = field(default_factory=lambda: [0.0, 0.999])  # BigGAN's Adam betas (G, D and C)
    c_betas: Optional[List[float]] = None  # C's own Adam betas; None = betas (the paper)
    n_dis: int = 2                  # D updates per G (and C) update
    adv_loss: str = "hinge"         # adversarial form: hinge only (D's unary + joint hinge terms, C's mean[s_r])
    c_outlier_weight: float = 0.0   # weight of −H(C(o)) on synthetic outliers o (flat and noise images) in C's loss (0 = off, the paper)
    c_outlier_count: Optional[int] = None  # outliers per C step; None = as many as the real batch
    c_adv_weight: float = 1.0       # weight of mean[s_r] in C's loss
    aug_grad_through_target: bool = False  # L_aug: also back-propagate through q = softmax(C(T(x)))
    c_spectral_norm: bool = True    # spectral norm on C (the paper: spectral normalization in both C and G)
    c_net: str = "own"              # own: C an encoder of its own (the paper) | extractor: a head on the frozen extractor's features (SCAN)
    c_ema_decay: Optional[float] = None  # EMA of C (warm-up as G's, from ema_start) labels real images at inference; None = off
    # the views T of L_aug, and a balance term on C's batch marginal (IMSAT; balance_weight 0 = off, the paper)
    clustering: BalanceConfig = field(default_factory=BalanceConfig)


def synthetic_outliers(x: torch.Tensor, n: Optional[int] = None) -> torch.Tensor:
    """``n`` images (default: as many as ``x``) shaped like ``x`` that are no sample of the data: the first
    half flat (one random level in [−1, 1] per image, blank black and white included), the rest uniform
    noise in [−1, 1]."""
    n = x.shape[0] if n is None else int(n)
    flat = (torch.rand(n - n // 2, *([1] * (x.dim() - 1)), device=x.device) * 2 - 1).expand(-1, *x.shape[1:])
    noise = torch.rand(n // 2, *x.shape[1:], device=x.device) * 2 - 1
    return torch.cat([flat, noise]).to(x.dtype)


class Clusterer(nn.Module):
    """C: an arch's encoder with K outputs, or (``extractor_cfg`` given) a head on that frozen extractor's
    features; logits → p(y|x) = softmax, ``features`` the penultimate layer. Saved and loaded standalone
    with :meth:`save` / :meth:`load` (a head's file carries the extractor's weights and settings)."""

    compile_also = ("net",)  # probs / features reach the net without C's forward

    def __init__(self, model_cfg, in_shape: Sequence[int], k: int, spectral_norm: bool = False,
                 extractor_cfg=None):
        super().__init__()
        if k < 1:
            raise ConfigError(f"method.num_clusters={k}: must be >= 1")
        self.k = int(k)
        self.in_shape = tuple(int(s) for s in in_shape)
        self.spectral_norm = bool(spectral_norm)
        self.model_cfg = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) \
            else dict(model_cfg)
        self.extractor_cfg = None if extractor_cfg is None else (
            OmegaConf.to_container(extractor_cfg, resolve=True) if isinstance(extractor_cfg, DictConfig) else dict(extractor_cfg))
        if self.extractor_cfg is None:
            self.net = build_encoder(OmegaConf.create(self.model_cfg), self.in_shape, self.k, self.spectral_norm)
        else:
            from lsgan.features.extractors import build_extractor

            self.net = FeatureHead(build_extractor(OmegaConf.create(self.extractor_cfg), self.in_shape), self.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, B×K."""
        return self.net(x)

    def probs(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.net(x), dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, B×feat_dim."""
        return self.net.features(x)

    @torch.no_grad()
    def assign(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Cluster ids argmax C(x), int64 B (computed in chunks on C's device)."""
        dev = next(self.parameters()).device
        return torch.cat([self(chunk.to(dev)).argmax(dim=1) for chunk in x.split(batch_size)]).to(x.device)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Penultimate features of many images, in chunks, on the CPU."""
        dev = next(self.parameters()).device
        return torch.cat([self.features(chunk.to(dev)).cpu() for chunk in x.split(batch_size)])

    def save(self, path: str) -> str:
        """Write {state_dict, meta} atomically (temporary file, then rename)."""
        meta = {"k": self.k, "in_shape": list(self.in_shape), "spectral_norm": self.spectral_norm,
                "model": self.model_cfg, "extractor": self.extractor_cfg}
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        atomic_torch_save({"state_dict": state, "meta": meta}, path)
        return path

    @classmethod
    def load(cls, path: str, map_location: Union[str, torch.device] = "cpu") -> "Clusterer":
        if not os.path.isfile(path):
            raise FileNotFoundError(f"clusterer file not found: {path}")
        blob = torch.load(path, map_location=map_location, weights_only=True)
        meta = blob["meta"]
        net = cls(meta["model"], meta["in_shape"], meta["k"], meta["spectral_norm"], meta.get("extractor"))
        net.load_state_dict(blob["state_dict"])
        return net.to(map_location).eval()  # for inference: no spectral-norm power iteration


@register
class SLCGAN(GANMethod):
    Config = SLCGANConfig
    LOSSES = ("full", "no_mi", "no_aug")
    ADV_LOSSES = ("hinge",)
    freeze_others_in_g_step = False  # g_step also updates C (its own optimizer)

    @classmethod
    def check_config(cls, cfg: DictConfig) -> None:
        m = cfg.method
        if m.num_clusters < 2:
            raise ConfigError(f"method.num_clusters={m.num_clusters}: must be >= 2 (one cluster is an unconditional GAN)")
        for name in ("c_adv_weight", "lr_c", "c_outlier_weight"):
            if float(m[name]) < 0:
                raise ConfigError(f"method.{name}={m[name]}: must be >= 0")
        check_balance_config(m.clustering)
        check_choice("method.c_net", m.c_net, C_NETS)
        if m.c_outlier_count is not None and int(m.c_outlier_count) < 1:
            raise ConfigError(f"method.c_outlier_count={m.c_outlier_count}: need an integer >= 1 (or null = the batch size)")
        if m.c_ema_decay is not None and not 0.0 < float(m.c_ema_decay) < 1.0:
            raise ConfigError(f"method.c_ema_decay={m.c_ema_decay}: need a number in (0, 1) (or null = off)")
        if m.c_betas is not None and (len(m.c_betas) != 2 or not all(0 <= float(b) < 1 for b in m.c_betas)):
            raise ConfigError(f"method.c_betas={list(m.c_betas)}: need two numbers in [0, 1) (or null = method.betas)")

    def build(self) -> None:
        k, shape = self.num_conditions, tuple(self.data_info.shape)
        loss = self.cfg.loss.name
        self.mi_weight = 0.0 if loss == "no_mi" else 1.0  # the paper weighs L_mi and L_aug 1; the ablations drop one
        self.aug_weight = 0.0 if loss == "no_aug" else 1.0
        self.augment = None
        if self.aug_weight > 0:
            if len(shape) != 3:
                raise ConfigError(f"loss={loss}: the multi-view augmentation T needs image data, but "
                                  f"dataset={self.data_info.name} is shaped {shape}; use loss=no_aug")
            self.augment = MultiViewAugment(self.mcfg.clustering.augment, shape)
        self.G = build_generator(self.cfg.model, self.latent_dim, shape, num_classes=k)
        self.D = build_discriminator(self.cfg.model, shape, num_classes=k)
        if self.mcfg.c_net == "extractor" and len(shape) != 3:
            raise ConfigError(f"method.c_net=extractor: dataset={self.data_info.name} is not image data")
        # c_net=extractor: on photographs a C of its own clusters colour and background (docs/slcgan.md)
        self.C = Clusterer(self.cfg.model, shape, k, spectral_norm=bool(self.mcfg.c_spectral_norm),
                           extractor_cfg=self.cfg.extractor if self.mcfg.c_net == "extractor" else None)
        n = int(self.mcfg.clustering.neighbours)
        self.neighbours = MinedNeighbours(n) if n > 0 and self.augment is not None else None
        # C at lr 1e-3 keeps moving: a cluster can lose half its images to a neighbour within 50 steps and
        # win them back later (docs/slcgan.md); the average labels real images at inference.
        # Training still reads the online C (D's real pairs, L_mi), as in the paper.
        self.c_ema = None if self.mcfg.c_ema_decay is None else EMA(self.C)
        self._c_logits = None  # (batch, C(batch)) from d_step, reused by the C step of the same iteration

    def optimizer_groups(self) -> Dict[str, Dict]:
        betas = tuple(self.mcfg.betas)
        return {
            "d": dict(params=self.D.parameters(), lr=self.mcfg.lr_d, betas=betas),
            "g": dict(params=self.G.parameters(), lr=self.mcfg.lr_g, betas=betas),
            # without spectral norm, momentum-free Adam at lr 1e-3 put every image in one cluster
            # within ~25 C steps (docs/slcgan.md), hence C's own betas
            "c": dict(params=self.C.parameters(), lr=self.mcfg.lr_c,
                      betas=betas if self.mcfg.c_betas is None else tuple(self.mcfg.c_betas)),
        }

    # ------------------------------------------------------------------ losses
    def draw_conditions(self, n: int) -> torch.Tensor:
        return torch.randint(0, self.num_conditions, (n,), device=self.device)

    def d_loss(self, x: torch.Tensor, c_logits: Optional[torch.Tensor] = None):
        """(D's loss, logs); G and C are evaluated without graphs, so only D gets gradients.
        ``c_logits``: C(x) already computed (d_step keeps its graph for the C step); read detached."""
        n = x.shape[0]
        c = self.draw_conditions(n)
        with torch.no_grad():
            fake = self.G(self.draw_z(n), c)
            p_real = self.C.probs(x) if c_logits is None else F.softmax(c_logits.detach(), dim=1)
        u_r, s_r = self.D.forward_parts(x, p_real)
        u_f, s_f = self.D.forward_parts(fake, F.one_hot(c, self.num_conditions).float())
        loss = slcgan_d_hinge(u_r, s_r, u_f, s_f)
        logs = {"u_real": u_r.mean(), "s_real": s_r.mean(), "u_fake": u_f.mean(), "s_fake": s_f.mean()}
        return loss, {k: v.detach() for k, v in logs.items()}

    def g_loss(self, n: int):
        """(G's loss, logs): mean[−u_f − s_f] + mi_weight·L_mi, with C frozen so L_mi trains G only."""
        c = self.draw_conditions(n)
        fake = self.G(self.draw_z(n), c)
        u_f, s_f = self.D.forward_parts(fake, F.one_hot(c, self.num_conditions).float())
        loss = slcgan_g_hinge(u_f, s_f)
        logs = {"loss_g_adv": loss.detach()}
        if self.mi_weight > 0:
            with frozen(self.C):
                mi = slcgan_mi_loss(self.C(fake), c)
            loss = loss + self.mi_weight * mi
            logs["loss_mi"] = mi.detach()
        return loss, logs

    def on_fit_start(self) -> None:
        super().on_fit_start()
        fit_method_neighbours(self)

    @property
    def c_logits_of_features(self):
        """C's logits from the frozen extractor's features, when C is a head on the extractor the neighbours
        were mined in (its real images' features are then read from there: ``clustering_inputs``); else None."""
        if self.neighbours is None or not isinstance(self.C.net, FeatureHead):
            return None
        return self.C.net.from_features

    def real_c_logits(self, batch: Batch) -> torch.Tensor:
        """C(x) of the batch's real images, with its graph (from the mined features where C reads them)."""
        if reads_mined_features(self, self.c_logits_of_features):
            return self.c_logits_of_features(self.neighbours.features_at(batch.index, batch.x))
        return self.C(batch.x)

    def c_loss(self, x: torch.Tensor, logits: Optional[torch.Tensor] = None,
               second: Optional[Callable[[], torch.Tensor]] = None):
        """(C's loss, logs): c_adv_weight·mean[s_r] + L_aug (+ the balance term) on real images,
        − c_outlier_weight·H(C(synthetic outliers)).
        ``logits``: C(x) with its graph, when already computed at C's current weights. ``second``: gives C's
        logits of L_aug's second view (of a mined neighbour), called only when L_aug counts; None = C(T(x))."""
        logits = self.C(x) if logits is None else logits
        p = F.softmax(logits, dim=1)
        # collapse monitors: entropy of the batch's cluster marginal (log K = all used evenly)
        # and the mean max-probability (confidence of the assignments)
        logs = {"c_marginal_entropy": marginal_entropy(p.detach()),
                "c_confidence": p.max(dim=1).values.mean().detach()}
        loss = logits.new_zeros(())
        if float(self.mcfg.c_adv_weight) > 0:  # D's pass over (x, C(x)) only where its term counts
            _, s_r = self.D.forward_parts(x, p)
            adv = slcgan_c_adversarial(s_r)
            loss = loss + float(self.mcfg.c_adv_weight) * adv
            logs["loss_c_adv"] = adv.detach()
        balance_weight = float(self.mcfg.clustering.balance_weight)
        if balance_weight > 0:
            # Deep-clustering balance term (IMSAT, SCAN): L_aug rewards confident, consistent
            # assignments, which one cluster for every image also satisfies; the adversarial
            # term only punishes that collapse once D has learnt class embeddings.
            balance = marginal_kl(p, None, reverse=self.mcfg.clustering.balance_kl == "reverse")
            loss = loss + balance_weight * balance
            logs["c_balance"] = balance.detach()
        if self.aug_weight > 0:
            other = self.C(self.augment(x)) if second is None else second()
            aug = slcgan_aug_loss(logits, other, bool(self.mcfg.aug_grad_through_target))
            loss = loss + self.aug_weight * aug
            logs["loss_aug"] = aug.detach()
        w_out = float(self.mcfg.c_outlier_weight)
        if w_out > 0:
            # Outlier exposure with synthetic outliers (Hein et al., 2019): a ReLU net is confident far from
            # its data, and C gave an all-black image p = 1.00 for one cluster, so L_mi paid G to draw that
            # condition blank (docs/slcgan.md). C learns that a flat or noise image is no digit.
            h_out = mean_entropy(self.C(synthetic_outliers(x, self.mcfg.c_outlier_count)))
            loss = loss - w_out * h_out
            logs["c_outlier_entropy"] = h_out.detach()
        return loss, logs

    # ------------------------------------------------------------------ steps
    def d_step(self, batch: Batch):
        # When C steps later in this iteration, C(x) is computed once, with its graph: D reads it
        # detached and the C step reuses it (C's weights do not move in between and C keeps no
        # batch statistics), one C pass fewer per iteration.
        c_logits = self.real_c_logits(batch) if self.g_steps_now() else None
        self._c_logits = None if c_logits is None else (batch.x, c_logits)
        loss, logs = self.d_loss(batch.x, c_logits)
        self.step_opt("d", loss)
        return {"loss_d": loss.detach(), **logs}

    def g_step(self, batch: Batch):
        # C moves with G (it plays with G against D), once per G update, after it.
        loss_g, logs = self.g_loss(len(batch))
        self.step_opt("g", loss_g)
        kept, self._c_logits = self._c_logits, None
        _, logits_of, partner, views = clustering_inputs(self, batch, self.C, self.c_logits_of_features)
        second = None if partner is None else (lambda: logits_of(self.augment(partner) if views else partner))
        kept = kept[1] if kept is not None and kept[0] is batch.x else None
        loss_c, c_logs = self.c_loss(batch.x, kept if kept is not None else self.real_c_logits(batch), second)
        if loss_c.requires_grad:  # every term of C's loss weighted 0 (loss=no_aug, no balance, no adv): C stays
            self.step_opt("c", loss_c)
            if self.c_ema is not None:
                self.c_ema.update(self.C, ema_decay_at(self.iteration, int(self.mcfg.ema_start),
                                                       float(self.mcfg.c_ema_decay)))
        return {"loss_g": loss_g.detach(), "loss_c": loss_c.detach(), **logs, **c_logs}

    def on_train_end(self) -> None:
        super().on_train_end()
        # C's own state, usable without the GAN (clustering, features, linear probes).
        if self.trainer is not None and self.trainer.is_global_zero:
            self.clusterer.save(os.path.join(self.trainer.default_root_dir, CLUSTERER_FILE))

    # ------------------------------------------------------------------ generate on demand
    @property
    def num_conditions(self) -> int:
        return int(self.mcfg.num_clusters)

    @property
    def clusterer(self) -> Clusterer:
        """The C that labels real images at inference: its EMA when ``c_ema_decay`` is set, else C."""
        return self.c_ema.module if self.c_ema is not None else self.C

    @inference
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        z = z.to(self.device)
        return self.generator(z, self.condition_ids(len(z), condition, "cluster"))

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        g = self.generator if use_ema else self.G
        return g(self.draw_z(n), self.condition_ids(n, condition, "cluster"))

    @inference
    def condition_of(self, x: torch.Tensor) -> torch.Tensor:
        """argmax C(x): the pseudo-class whose samples look like x."""
        return self.clusterer.assign(x)

    @inference
    def features_of(self, x: torch.Tensor) -> torch.Tensor:
        """C's penultimate features (the representation the paper probes linearly)."""
        return self.clusterer.features(x.to(self.device))

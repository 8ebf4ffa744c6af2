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

Optionally (``method.clustering.weight`` > 0, not in the paper) h also clusters *real* images: two
random views T(x) of a real batch must get the same confident mode from h2(h1(·)) while the
batch's modes follow P_Y (``lsgan.losses.clustering``, KL of h's batch marginal to P_Y, so an
imbalanced P_Y such as 02:98 is kept). The mode term then makes g draw from mode y what h puts
in mode y. With ``encoder=hybrid`` h1 is a head on D's trunk (the norm term: g must show z in what D judges) and
the modes come from a net of their own straight to the k logits (as clustergan's ``encoder=hybrid``).
``encoder=extractor`` is hybrid with the modes from a head on the frozen extractor's features (SCAN, as
clustergan's ``encoder=extractor``): on photographs a net trained from scratch clusters colour and background;
with ``method.clustering.neighbours`` > 0 the clustering term's second view is one of the image's mined neighbours.

For an imbalanced P_Y (0/4 at 02:98) ``method.stratify_modes=balanced`` trains on every mode in equal numbers
with D's real term balanced over the modes h assigns (g's small mode is matched to the real images h puts
there); see ``STRATIFY``.

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

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional


import torch
import torch.nn.functional as F
from torch import nn

from lsgan.errors import ConfigError, check_choice
from lsgan.data.batch import Batch
from lsgan.losses import ADVERSARIAL, mode_seeking_loss
from lsgan.losses.nemgan import latent_norm_loss, mode_matching_loss, predicted_mode_kl
from lsgan.methods.registry import register
from lsgan.generation import even_conditions
from lsgan.methods.base import GANMethod, MethodConfig, inference
from lsgan.methods.clustering_term import (ClusteringConfig, MinedNeighbours, RealClusteringTerm, check_clustering_config,
                                          clustering_inputs, fit_method_neighbours)
from lsgan.nets.feature_head import FeatureHead
from lsgan.nets.layers import scale_preserving_init_
from lsgan.nets import SharedTrunkEncoder, build_discriminator, build_encoder, build_generator, score_and_encode
from lsgan.nets.modes import eval_mode, frozen
from lsgan.priors import build_prior

# loss name -> the terms (besides the adversarial one) that g and h minimise
TERMS = {"full": ("norm", "mode"), "no_h1": ("mode",), "no_h2": ("norm",), "gan_only": ()}
ENCODERS = ("separate", "hybrid", "extractor")
# the encoders whose modes come from a net straight to the k logits (no h2 on h1's latent)
MODE_NETS = ("hybrid", "extractor")
# method.stratify_modes: how training steps treat the modes of an imbalanced P_Y (02:98: a batch of 64 holds a
# mode-0 latent about once, so D and g's mode-0 terms were mostly absent).
#   none: latents drawn from P_Y (the paper).
#   balanced: the k modes in equal numbers (g's terms unweighted: each mode an equal share of g's gradient), and
#     D's real term weighted so that every mode h assigns to the real batch has an equal share: D judges each mode's region as a class-balanced data set would let it (the
#     modes are h's, no labels), and g's mode y is matched to the real images h puts in mode y.
STRATIFY = ("none", "balanced")


@dataclass
class NEMGANConfig(MethodConfig):
    name: str = "nemgan"
    betas: List[float] = field(default_factory=lambda: [0.5, 0.999])
    adv_loss: str = "ns"             # adversarial form: hinge | ns | minimax | wgan_gp
    gp_weight: float = 10.0          # λ of the gradient penalty (adv_loss=wgan_gp only)
    norm_weight: float = 1.0         # λ of the norm loss ‖z − h1(g(z))‖_p
    norm_p: float = 1.0              # p of that norm (paper: L1)
    mode_weight: float = 1.0         # λ of the mode-matching cross-entropy
    mode_seeking_weight: float = 0.0  # weight of MSGAN's mode-seeking term over same-mode pairs; 0 = off (paper)
    encoder: str = "separate"        # separate: h1 its own net (paper) | hybrid: h1 on D's trunk, modes from a net of their own | extractor: as hybrid, modes from a head on the frozen extractor's features (SCAN)
    h_spectral_norm: bool = False    # spectral norm on h1's own net (separate) or the mode net (hybrid; extractor's head has none); paper: none
    am_margin: float = 0.0           # 0: softmax head; > 0: cosine head with AM-softmax margin
    am_scale: float = 10.0           # AM-softmax scale s (only with am_margin > 0)
    h2_width: int = 64               # hidden units of h2 (latent → mode MLP)
    h2_depth: int = 1                # hidden layers of h2 (0 = linear)
    lr_h: float = 2e-4               # Adam learning rate of h1 and h2
    semi_fraction: float = 0.0       # labelled fraction per class for semi-supervision; 0 = off
    semi_every: int = 100            # iterations between semi-supervised passes over that subset
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)  # h's clustering of real images, balanced to P_Y (off: the paper)
    stratify_modes: str = "none"     # none: training latents follow P_Y (paper) | balanced (see STRATIFY)
    h_reads_fakes: bool = True       # the mode term on g's samples trains h too (paper); false: g only


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
        # logits of std ~1 from unit-scale inputs (torch's default init gave ~0.2: a softmax so flat
        # that the mode and clustering terms barely moved h at first, as the encoders' old init)
        for layer in self.body:
            if isinstance(layer, nn.Linear):
                scale_preserving_init_(layer, leak=0.2)
        if not cosine:
            nn.init.normal_(self.head.weight, 0.0, 1.0 / math.sqrt(prev))
            nn.init.zeros_(self.head.bias)

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
    ADV_LOSSES = tuple(ADVERSARIAL)

    @classmethod
    def check_config(cls, cfg) -> None:
        m = cfg.method
        if cfg.prior.name != "engineered":
            raise ConfigError(f"prior={cfg.prior.name} is not accepted by method=nemgan; accepted values: engineered")
        check_choice("method.encoder", m.encoder, ENCODERS)
        check_choice("method.stratify_modes", m.stratify_modes, STRATIFY)
        if m.stratify_modes == "balanced" and "mode" not in TERMS[cfg.loss.name]:
            raise ConfigError(f"method.stratify_modes=balanced reads h's modes of real images, which loss={cfg.loss.name} "
                              f"does not train; accepted with loss: full, no_h1 (or stratify_modes=none)")
        if m.encoder in MODE_NETS and m.am_margin > 0:
            raise ConfigError(f"method.am_margin={m.am_margin} needs h2's cosine head, which encoder={m.encoder}'s mode net "
                              f"(straight to the k logits) does not have; accepted: encoder=separate, or am_margin=0")
        if m.norm_p <= 0:
            raise ConfigError(f"method.norm_p={m.norm_p}: must be > 0 (1 = L1, 2 = L2)")
        for key in ("norm_weight", "mode_weight", "am_margin", "mode_seeking_weight"):
            if m[key] < 0:
                raise ConfigError(f"method.{key}={m[key]}: must be >= 0")
        if m.am_scale <= 0:
            raise ConfigError(f"method.am_scale={m.am_scale}: must be > 0")
        if m.h2_width < 1 or m.h2_depth < 0:
            raise ConfigError(f"method.h2_width={m.h2_width}, method.h2_depth={m.h2_depth}: "
                              f"need width >= 1 and depth >= 0")
        if not 0 <= m.semi_fraction <= 1:
            raise ConfigError(f"method.semi_fraction={m.semi_fraction}: must be in [0, 1] (0 = off)")
        check_clustering_config(m.clustering)
        if int(m.clustering.neighbours) > 0 and m.encoder != "extractor":
            raise ConfigError(f"method.clustering.neighbours={m.clustering.neighbours} pairs an image with neighbours mined in "
                              f"the extractor's features, for the mode head on them; it needs method.encoder=extractor "
                              f"(got encoder={m.encoder}), or neighbours=0")
        if int(m.clustering.heads) > 1 and m.encoder not in MODE_NETS:
            raise ConfigError(f"method.clustering.heads={m.clustering.heads} widens the mode net to heads × k logits; it "
                              f"needs method.encoder=hybrid | extractor (got encoder={m.encoder}), or heads=1")
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
        sn = bool(self.mcfg.h_spectral_norm)
        # h's clustering of real images, balanced to P_Y (clustering.weight > 0; None = off, the paper).
        # loss=no_h2 / gan_only remove h2 and with it this term, which trains it: so a recipe's ablation
        # sweep composes (experiment=nemgan_mnist loss=no_h2), the term is dropped, not refused
        self.cluster_term = (RealClusteringTerm.build(self.mcfg.clustering, shape, self.data_info.name, self.prior.weights)
                             if "mode" in self.terms else None)
        self.mode_net = None
        if self.mcfg.encoder == "separate":
            self.h1 = build_encoder(self.cfg.model, shape, self.prior.dim, spectral_norm=sn)
        else:
            self.h1 = SharedTrunkEncoder(self.D, self.prior.dim)
        # clustering.heads > 1: the mode net's last layer gives every SeLa head its k logits (cluster_logits reads
        # the selected one); only while the clustering term that trains them is on
        heads = 1 if self.cluster_term is None else self.cluster_term.heads
        if self.mcfg.encoder == "hybrid":
            # z is read back through D's features, so g must show it (a net of its own reads it
            # from changes too small to see); the modes come from a net of their own, which
            # clusters real digits without reshaping the features D judges with (docs/nemgan.md)
            # straight to the k logits, as clustergan's cluster net (an MLP h2 on a 50-d output clustered
            # real digits at 0.46 against 0.67 without it: docs/nemgan.md)
            self.mode_net = build_encoder(self.cfg.model, shape, self.prior.k * heads, spectral_norm=sn)
        elif self.mcfg.encoder == "extractor":
            # as hybrid, but the modes come from a head on the frozen extractor's features: on photographs a net
            # of its own clusters colour and background (docs/nemgan.md)
            from lsgan.features import extractor_for_method

            if len(shape) != 3:
                raise ConfigError(f"method.encoder=extractor: dataset={self.data_info.name} is not image data")
            self.mode_net = FeatureHead(extractor_for_method(self.cfg, tuple(shape)), self.prior.k * heads)
        n = int(self.mcfg.clustering.neighbours)
        self.neighbours = MinedNeighbours(n) if self.cluster_term is not None and n > 0 else None
        if self.mode_net is not None:
            self.h2 = nn.Identity()
        else:
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
        h_params = [p for net in (self.h1, self.h2, self.mode_net) if net is not None for p in net.parameters()]
        # g and h minimise one objective, so one optimizer steps both (h with its own lr)
        return {
            "d": dict(params=self.D.parameters(), lr=self.mcfg.lr_d, betas=betas),
            "g": dict(params=[{"params": list(self.G.parameters())}, {"params": h_params, "lr": self.mcfg.lr_h}],
                      lr=self.mcfg.lr_g, betas=betas),
        }

    # ------------------------------------------------------------------ training
    def draw_latent(self, n: int, modes=None, rng: Optional[torch.Generator] = None):
        """(z, y): n engineered latents and their modes (modes drawn from P_Y when None); ``rng``: draw from
        this torch.Generator instead of the global RNG."""
        return self.prior.sample(n, modes=modes, generator=rng, device=self.device)

    def draw_training_latent(self, n: int):
        """(z, y) for one training step (``method.stratify_modes``, see STRATIFY): modes from P_Y, or the k modes
        in equal numbers (``balanced``). g's terms are never weighted: an equal share of g's gradient per mode
        leaves the equilibrium (p_g = p_data in every mode's region, where every per-sample gradient vanishes)
        where it was."""
        if self.mcfg.stratify_modes == "none":
            return self.draw_latent(n)
        return self.draw_latent(n, even_conditions(n, self.prior.k, self.device))

    def real_mode_weight(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """``stratify_modes=balanced``: weights (mean 1) that give each mode h assigns to the real batch an equal
        share of D's real term (w_i = B / (modes present · count of i's mode)); None otherwise."""
        if self.mcfg.stratify_modes != "balanced":
            return None
        with torch.no_grad(), eval_mode(self.h1, self.h2, self.mode_net):
            y = self.cluster_logits(x).argmax(1)
        counts = torch.bincount(y, minlength=self.prior.k).float()
        return len(y) / (counts[y] * (counts > 0).sum())

    def d_step(self, batch: Batch):
        n = len(batch)
        z, _ = self.draw_training_latent(n)
        with torch.no_grad():
            fake = self.G(z)
        d_real = self.D(batch.x)
        d_fake = self.D(fake)
        return {**self.adversarial_d_step(batch.x, fake, d_real, d_fake, real_weight=self.real_mode_weight(batch.x)),
                **self._maybe_semi()}

    def generator_objective(self, z: torch.Tensor, y: torch.Tensor):
        """(loss, logs): the joint objective of g and h on latents z of modes y. Only the terms
        of the configured ablation are computed."""
        fake = self.G(z)
        # h1 is evaluated only when an inversion term uses it (loss=gan_only trains no h)
        d_fake, z_hat = score_and_encode(self.D, self.h1, fake) if self.terms else (self.D(fake), None)
        adv = self.g_loss_fn(d_fake)
        loss, logs = adv, {"g_adv": adv.detach()}
        if float(self.mcfg.mode_seeking_weight) > 0:
            # same-mode pairs of the batch; their latents differ only in the uniform noise
            seek = mode_seeking_loss(fake, z / float(self.cfg.prior.noise_width), y)
            loss = loss + float(self.mcfg.mode_seeking_weight) * seek
            logs["mode_seeking"] = seek.detach()
        if not self.terms:
            return loss, logs
        mode_logits = None
        if "mode" in self.terms and not self.mcfg.h_reads_fakes:
            # h frozen for g's samples: the mode term moves g towards h's modes and leaves h's
            # modes to the real images (the clustering term), as slcGAN's L_mi with C frozen
            with frozen(self.h1), frozen(self.h2), frozen(self.mode_net):
                mode_logits = self.cluster_logits(fake)
        elif "mode" in self.terms and self.mode_net is not None:
            mode_logits = self.cluster_logits(fake)
        inv, inv_logs = self.inversion_loss(z, y, z_hat, mode_logits)
        return loss + inv, {**logs, **inv_logs}

    def inversion_loss(self, z: torch.Tensor, y: torch.Tensor, z_hat: torch.Tensor,
                       mode_logits: Optional[torch.Tensor] = None):
        """(weighted norm + mode terms of the configured ablation, logs) for h1's output z_hat;
        the mode term reads ``mode_logits`` when given, else h2(z_hat)."""
        loss, logs = z_hat.new_zeros(()), {}
        if "norm" in self.terms:
            norm = latent_norm_loss(z, z_hat, self.mcfg.norm_p)
            loss = loss + self.mcfg.norm_weight * norm
            logs["norm"] = norm.detach()
        if "mode" in self.terms:
            logits = self.h2(z_hat) if mode_logits is None else mode_logits
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
        z, y = self.draw_training_latent(len(batch))
        loss, logs = self.generator_objective(z, y)
        if self.cluster_term is not None:
            cluster, parts = self.cluster_term(*clustering_inputs(self, batch, self.scaled_head_logits, self.scaled_logits_of_features))
            loss = loss + cluster
            logs.update(parts)
        self.step_opt("g", loss)
        return {"loss_g": loss.detach(), **logs, **self._maybe_semi()}

    def head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """h2(h1(x)) (hybrid: h2 of the mode net): every SeLa head's mode logits (one head unless
        ``clustering.heads`` > 1) of images x (training mode, with gradient)."""
        return self.h2(self.h1(x) if self.mode_net is None else self.mode_net(x))

    def scaled_head_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``head_logits`` as the softmax sees them (a cosine head's cosines times am_scale): what the
        clustering term on real images reads."""
        return self.head_logits(x) * self._logit_scale

    @property
    def scaled_logits_of_features(self):
        """encoder=extractor: ``scaled_head_logits`` from the frozen extractor's features (the mode net is a head
        on it); None otherwise."""
        if not isinstance(self.mode_net, FeatureHead):
            return None
        return lambda f: self.h2(self.mode_net.from_features(f)) * self._logit_scale

    def cluster_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The mode logits of images x: ``head_logits`` of the selected SeLa head (the only one unless
        ``clustering.heads`` > 1)."""
        logits = self.head_logits(x)
        return logits if self.cluster_term is None else self.cluster_term.select(logits)

    # ------------------------------------------------------------------ fit start: neighbours, semi-supervision
    def on_fit_start(self) -> None:
        fit_method_neighbours(self)
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
            logits = self.cluster_logits(x)
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
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        """Samples from standard-normal noise ``z`` (the base's fixed grid noise): z is mapped
        through the normal CDF to the prior's U(±noise_width) noise and added to the code of
        ``condition`` (all modes evenly when None), so grid rows share their noise."""
        z = z.to(self.device)
        modes = self.condition_ids(len(z), condition, "mode")
        noise = (torch.special.ndtr(z) * 2 - 1) * float(self.cfg.prior.noise_width)
        return self.generator(self.codes[modes] + noise)

    @inference
    def latent_of(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """h1(x): the latent of each image (B×prior.dim)."""
        return torch.cat([self.h1(c.to(self.device)) for c in x.split(batch_size)])

    @inference
    def condition_of(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """argmax h2(h1(x)): the mode that generates images like x. With loss=no_h2, h2 is never
        trained, so the mode is the nearest engineered code to h1(x) instead."""
        if not self.terms:
            raise NotImplementedError("loss=gan_only trains no inversion network h, so it has no condition_of")
        if "mode" in self.terms:
            return torch.cat([self.cluster_logits(c.to(self.device)).argmax(1) for c in x.split(batch_size)])
        return torch.cdist(self.latent_of(x, batch_size), self.codes).argmin(1)

    @inference
    def reconstruct(self, x: torch.Tensor, use_ema: bool = True, batch_size: int = 500) -> torch.Tensor:
        """g(h1(x)): inference by inversion."""
        g = self.generator if use_ema else self.G
        return torch.cat([g(z) for z in self.latent_of(x, batch_size).split(batch_size)])


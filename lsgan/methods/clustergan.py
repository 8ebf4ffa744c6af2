"""ClusterGAN (Mukherjee, Asnani, Lin, Kannan — "ClusterGAN: Latent Space Clustering in
Generative Adversarial Networks", AAAI 2019).

The latent is z = (z_n, z_c): z_n ~ N(0, σ²I) with small σ and z_c a one-hot of K clusters
(``prior=onehot_gaussian``), or a continuous Gaussian mixture (``prior=gmm``, the "ClusterGAN
(GMM)" variant, where the cluster id is the mixture component). An encoder E inverts G:
E(x) = (ẑ_n, logits of ẑ_c). G and E are trained together, with one optimizer as in the
authors' code, on L_GE = L_adv + β_n‖z_n − ẑ_n‖² + β_c·CE(z_c, softmax(ẑ_c)) with
(ẑ_n, ẑ_c) = E(G(z)) (β_n, β_c: ``method.zn_weight``, ``zc_weight``); D is trained on the adversarial loss alone. Optionally (β_p = ``method.perceptual_weight`` > 0) a
perceptual term β_p·Σ_l λ_l‖φ_l(x) − φ_l(G(E(x)))‖² on VGG16 feature maps of a real batch is
added to L_GE (a student variant).

Optionally (``method.clustering.weight`` > 0, not in the paper) E's cluster head also clusters *real*
images: two random views T(x) of a real batch must get the same confident cluster while the batch
uses every cluster (``lsgan.losses.clustering``, slcGAN's L_aug made symmetric plus IMSAT's balance
term). L_GE's cluster term then makes G draw from cluster k what E puts in cluster k, so G's
clusters follow the real data's instead of settling where the adversarial game first put them
(measured on MNIST: without it some digits get two clusters and some none; docs/clustergan.md).

Clustering a real image: ``condition_of(x)`` = argmax of E's one-hot head; the authors'
evaluation instead runs k-means on E(x) = [ẑ_n, softmax(ẑ_c)] (``cluster_kmeans``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from lsgan.errors import ConfigError, check_choice
from lsgan.data.batch import Batch
from lsgan.losses import ADVERSARIAL, clustergan_ge_loss, mode_seeking_loss, perceptual_loss
from lsgan.methods.registry import register
from lsgan.methods.base import GANMethod, MethodConfig, inference
from lsgan.methods.clustering_term import (ClusteringConfig, MinedNeighbours, RealClusteringTerm, check_clustering_config,
                                          clustering_inputs, fit_method_neighbours)
from lsgan.nets import ConcatEncoder, SharedTrunkEncoder, build_discriminator, build_encoder, build_generator, score_and_encode
from lsgan.nets.feature_head import FeatureHead
from lsgan.nets.perceptual import VGG16_LAYERS, FeatureMaps, load_vgg16_features
from lsgan.nets.modes import frozen
from lsgan.priors import build_prior

PRIORS = ("onehot_gaussian", "gmm")
RECOVERIES = ("latent", "noise")
ENCODERS = ("separate", "hybrid", "extractor")
ADV_LOSSES = ("wgan_gp", "hinge", "ns")  # method.adv_loss (the authors': wgan_gp)

@dataclass
class ClusterGANConfig(MethodConfig):
    name: str = "clustergan"
    lr_g: float = 1e-4              # G and E share one Adam optimizer (authors' code)
    lr_d: float = 1e-4
    lr_e: Optional[float] = None    # E's learning rate in that optimizer; None = lr_g (authors)
    betas: List[float] = field(default_factory=lambda: [0.5, 0.9])
    n_dis: int = 5
    adv_loss: str = "wgan_gp"       # adversarial form: wgan_gp (authors) | hinge | ns
    gp_weight: float = 10.0         # λ of the gradient penalty (adv_loss=wgan_gp; authors: 10)
    zn_weight: float = 10.0         # β_n: weight of ‖z_n − E(G(z))_n‖²
    recovery: str = "latent"        # latent: ‖z_n − ẑ_n‖² (authors) | noise: the same in units of prior.sigma
    zc_weight: float = 10.0         # β_c: weight of CE(z_c, softmax(E(G(z))_c))
    perceptual_weight: float = 0.0  # β_p: weight of the perceptual term; 0 = off
    mode_seeking_weight: float = 0.0  # weight of MSGAN's mode-seeking term over same-cluster pairs; 0 = off (authors)
    encoder: str = "separate"       # separate: E its own net (authors) | hybrid: z_n from a head on D's trunk, clusters from a net of their own | extractor: as hybrid, clusters from a head on the frozen extractor's features (SCAN)
    perceptual_checkpoint: Optional[str] = None  # VGG16 state_dict (.pth); None = torchvision's download/cache
    perceptual_layers: List[str] = field(default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3"])
    perceptual_layer_weights: List[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)  # E's clustering of real images (off: the authors')
    e_reads_fakes: bool = True      # the cluster term on G's samples trains E too (authors); false: G only
    e_spectral_norm: bool = False   # spectral norm on the layers of E's own net (separate, hybrid; authors: none)


# --------------------------------------------------------------------------- perceptual features
def build_perceptual_net(mcfg) -> FeatureMaps:
    """The frozen VGG16 feature maps of ``method.perceptual_layers`` (tests swap in a small stand-in)."""
    ids = [VGG16_LAYERS[name] for name in mcfg.perceptual_layers]
    return FeatureMaps(load_vgg16_features(mcfg.perceptual_checkpoint, max(ids)), ids)


# --------------------------------------------------------------------------- method
@register
class ClusterGAN(GANMethod):
    Config = ClusterGANConfig
    LOSSES = ("full",)
    ADV_LOSSES = ADV_LOSSES

    @classmethod
    def check_config(cls, cfg) -> None:
        m = cfg.method
        if cfg.prior.name not in PRIORS:
            raise ConfigError(f"prior={cfg.prior.name} is not accepted by method=clustergan; "
                              f"accepted values: {', '.join(PRIORS)}")
        check_choice("method.recovery", m.recovery, RECOVERIES)
        check_choice("method.encoder", m.encoder, ENCODERS)
        check_clustering_config(m.clustering)
        if m.lr_e is not None and float(m.lr_e) <= 0:
            raise ConfigError(f"method.lr_e={m.lr_e}: must be > 0 (or null = method.lr_g)")
        for key in ("zn_weight", "zc_weight", "perceptual_weight", "mode_seeking_weight"):
            if float(m[key]) < 0:
                raise ConfigError(f"method.{key}={m[key]}: must be >= 0")
        unknown = [n for n in m.perceptual_layers if n not in VGG16_LAYERS]
        if unknown or not m.perceptual_layers:
            raise ConfigError(f"method.perceptual_layers={list(m.perceptual_layers)}: need one or more of "
                              f"{', '.join(VGG16_LAYERS)}")
        if len(m.perceptual_layer_weights) != len(m.perceptual_layers):
            raise ConfigError(f"method.perceptual_layer_weights={list(m.perceptual_layer_weights)}: need one weight "
                              f"per entry of method.perceptual_layers ({len(m.perceptual_layers)})")

    # ------------------------------------------------------------------ nets
    def build(self) -> None:
        self.prior = build_prior(self.cfg.prior)
        shape = tuple(self.data_info.shape)
        self.G = build_generator(self.cfg.model, self.prior.dim, shape)
        self.D = build_discriminator(self.cfg.model, shape)
        sn = bool(self.mcfg.e_spectral_norm)
        if self.mcfg.encoder == "hybrid":
            # z_n is read through D's features, so G must show it (a net of its own reads it from
            # changes too small to see); the clusters come from a net of their own, which clusters
            # real digits better than D's trunk can while it also plays D (docs/clustergan.md)
            self.E = ConcatEncoder(SharedTrunkEncoder(self.D, self.code_dim),
                                   build_encoder(self.cfg.model, shape, self.prior.k, spectral_norm=sn))
        elif self.mcfg.encoder == "extractor":
            # as hybrid, but the clusters come from a head on the frozen extractor's features: on
            # photographs a net of its own clusters colour and background (docs/clustergan.md)
            from lsgan.features import extractor_for_method

            if len(shape) != 3:
                raise ConfigError(f"method.encoder=extractor: dataset={self.data_info.name} is not image data")
            self.E = ConcatEncoder(SharedTrunkEncoder(self.D, self.code_dim),
                                   FeatureHead(extractor_for_method(self.cfg, shape), self.prior.k))
        else:
            self.E = build_encoder(self.cfg.model, shape, self.code_dim + self.prior.k, spectral_norm=sn)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL[self.mcfg.adv_loss]
        self.perceptual = None
        if float(self.mcfg.perceptual_weight) > 0:
            if len(shape) != 3:
                raise ConfigError(f"method.perceptual_weight={self.mcfg.perceptual_weight}: the perceptual term needs "
                                  f"image data, dataset={self.data_info.name} is {len(shape)}-D; set it to 0")
            self.perceptual = build_perceptual_net(self.mcfg)
        # E's clustering of real images (clustering.weight > 0; None = off, the authors' objective)
        self.cluster_term = RealClusteringTerm.build(self.mcfg.clustering, shape, self.data_info.name, self.prior.weights)
        k = int(self.mcfg.clustering.neighbours)
        self.neighbours = MinedNeighbours(k) if self.cluster_term is not None and k > 0 else None

    def on_fit_start(self) -> None:
        super().on_fit_start()
        fit_method_neighbours(self)

    @property
    def latent_dim(self) -> int:
        return int(self.prior.dim)

    @property
    def code_dim(self) -> int:
        """Size of the continuous part E recovers: z_n (onehot_gaussian) or the whole z (gmm)."""
        return int(self.cfg.prior.dim)

    @property
    def num_conditions(self) -> int:
        return int(self.prior.k)

    def optimizer_groups(self) -> Dict[str, Dict]:
        betas = tuple(self.mcfg.betas)
        return {
            "d": dict(params=self.D.parameters(), lr=self.mcfg.lr_d, betas=betas),
            # One optimizer over G and E, as the authors' g_adam minimises L_GE over both.
            # E gets a param group of its own only with lr_e set, so the optimizer state of runs
            # written before lr_e existed still resumes
            "g": dict(params=list(self.G.parameters()) + list(self.E.parameters()) if self.mcfg.lr_e is None else
                      [{"params": list(self.G.parameters())}, {"params": list(self.E.parameters()), "lr": self.lr_e}],
                      lr=self.mcfg.lr_g, betas=betas),
        }

    @property
    def lr_e(self) -> float:
        return float(self.mcfg.lr_g if self.mcfg.lr_e is None else self.mcfg.lr_e)

    # ------------------------------------------------------------------ latent helpers
    def continuous_part(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, :self.code_dim]

    def latent_from_noise(self, eps: torch.Tensor, modes: torch.Tensor) -> torch.Tensor:
        """Prior sample of mode ``modes`` built from standard-normal noise ``eps`` (B×prior.dim)."""
        sigma = float(self.cfg.prior.sigma)
        if self.cfg.prior.name == "gmm":
            return self.prior.means.to(eps.device)[modes] + sigma * eps
        return torch.cat([sigma * eps, F.one_hot(modes, self.prior.k).to(eps.dtype)], dim=1)

    def latent_from_code(self, z_n_hat: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """G's input for an encoded image: [ẑ_n, softmax(ẑ_c)] (onehot_gaussian) or ẑ (gmm)."""
        if self.cfg.prior.name == "gmm":
            return z_n_hat
        return torch.cat([z_n_hat, logits.softmax(dim=1)], dim=1)

    @property
    def recovery_scale(self) -> float:
        """Unit of the recovery term: prior.sigma with ``recovery=noise``, else 1.

        With the authors' σ = 0.1, z_n has variance 0.01, so ‖z_n − ẑ_n‖² is at most ~0.01 and
        β_n = 10 barely rewards G for using z_n (measured: G ignored it, one image per cluster).
        In units of σ the term is the regression of the standard-normal noise ε = z_n/σ, whose
        strength does not depend on σ."""
        return float(self.cfg.prior.sigma) if self.mcfg.recovery == "noise" else 1.0

    def split_code(self, e: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(ẑ_n, cluster logits) from E's output. With ``recovery=noise`` and the one-hot prior, E's
        code outputs are ε̂ (unit scale, as E's head starts) and ẑ_n = σ·ε̂."""
        code = e[:, :self.code_dim]
        if self.cfg.prior.name == "onehot_gaussian":
            code = code * self.recovery_scale
        return code, e[:, self.code_dim:]

    def draw_latent(self, n: int, modes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.prior.sample(n, modes=modes, device=self.device)

    def draw_z(self, n: int) -> torch.Tensor:
        return self.draw_latent(n)[0]

    # ------------------------------------------------------------------ updates
    def code_loss(self, z: torch.Tensor, modes: torch.Tensor, e: torch.Tensor):
        """(β_n·recovery + β_c·CE, parts) of encoder outputs ``e`` for latents z of clusters ``modes``."""
        z_n_hat, logits = self.split_code(e)
        unit = self.recovery_scale
        return clustergan_ge_loss(torch.zeros((), device=e.device), self.continuous_part(z) / unit, z_n_hat / unit,
                                  modes, logits, float(self.mcfg.zn_weight), float(self.mcfg.zc_weight))

    def d_step(self, batch: Batch):
        n = len(batch)
        z, modes = self.draw_latent(n)
        with torch.no_grad():
            fake = self.G(z)
        d_real = self.D(batch.x)
        return self.adversarial_d_step(batch.x, fake, d_real, self.D(fake))

    def g_step(self, batch: Batch):
        z, modes = self.draw_latent(len(batch))
        fake = self.G(z)
        hybrid_frozen = self.mcfg.encoder in ("hybrid", "extractor") and not self.mcfg.e_reads_fakes
        # (hybrid, E frozen for fakes: only the z_n head here; the cluster net runs once, frozen, below)
        d_fake, e = score_and_encode(self.D, self.E.parts[0] if hybrid_frozen else self.E, fake)
        adv = self.g_loss_fn(d_fake)
        if not self.mcfg.e_reads_fakes:
            # the cluster logits of the fakes from E with its weights detached: the cluster term
            # moves G towards E's clusters and leaves E's clusters to the real images
            with frozen(self.E):
                cluster_logits = self.cluster_logits(fake)
            e = torch.cat([e[:, :self.code_dim], cluster_logits], dim=1)
        code, logs = self.code_loss(z, modes, e)
        loss = adv + code
        logs["adv_g"] = adv.detach()
        logits = self.split_code(e)[1]
        logs["zc_acc"] = (logits.argmax(dim=1) == modes).float().mean().detach()
        if float(self.mcfg.mode_seeking_weight) > 0:
            # same-cluster pairs of the batch; their latents differ only in the noise part
            seek = mode_seeking_loss(fake, self.continuous_part(z) / float(self.cfg.prior.sigma), modes)
            loss = loss + float(self.mcfg.mode_seeking_weight) * seek
            logs["mode_seeking"] = seek.detach()
        if self.perceptual is not None:
            rec = self.G(self.latent_from_code(*self.split_code(self.E(batch.x))))
            weights = list(self.mcfg.perceptual_layer_weights)
            p = perceptual_loss(self.perceptual(batch.x), self.perceptual(rec), weights)
            loss = loss + float(self.mcfg.perceptual_weight) * p
            logs["perceptual"] = p.detach()
        if self.cluster_term is not None:
            cluster, parts = self.cluster_term(*clustering_inputs(self, batch, self.cluster_logits, self.cluster_logits_of_features))
            loss = loss + cluster
            logs.update(parts)
        self.step_opt("g", loss)
        return {"loss_g": loss.detach(), **logs}

    @property
    def cluster_logits_of_features(self):
        """encoder=extractor: ``cluster_logits`` from the frozen extractor's features (E's cluster net is a head
        on it); None otherwise."""
        return self.E.parts[1].from_features if self.mcfg.encoder == "extractor" else None

    def cluster_logits(self, x: torch.Tensor) -> torch.Tensor:
        """E's cluster logits of images x (training mode, with gradient)."""
        if self.mcfg.encoder in ("hybrid", "extractor"):
            return self.E.parts[1](x)  # the cluster net alone: no pass through D's trunk
        return self.split_code(self.E(x))[1]

    # ------------------------------------------------------------------ generate / infer
    @inference
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        """G(z) where z's first prior.dim columns are standard-normal noise turned into cluster ``condition``."""
        eps = z[:, :self.code_dim].to(self.device)
        modes = self.condition_ids(len(z), condition, "cluster")
        return self.generator(self.latent_from_noise(eps, modes))

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        """n images: z_c = e_k for ``condition=k`` (an id or n ids), all clusters evenly when None."""
        g = self.generator if use_ema else self.G
        z, _ = self.draw_latent(n, modes=self.condition_ids(n, condition, "cluster"))
        return g(z)

    @inference
    def code_of(self, x: torch.Tensor, batch_size: int = 512) -> Tuple[torch.Tensor, torch.Tensor]:
        """E(x) in eval mode, batched: (ẑ_n B×code_dim, cluster logits B×K), on x's device."""
        parts_n, parts_c = [], []
        for start in range(0, len(x), batch_size):
            z_n, logits = self.split_code(self.E(x[start:start + batch_size].to(self.device).float()))
            parts_n.append(z_n.to(x.device))
            parts_c.append(logits.to(x.device))
        return torch.cat(parts_n), torch.cat(parts_c)

    @inference
    def condition_of(self, x: torch.Tensor) -> torch.Tensor:
        """Cluster ids (int64, on x's device): argmax of E's one-hot head."""
        return self.code_of(x)[1].argmax(dim=1)

    @inference
    def cluster_features(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) as the authors cluster it: [ẑ_n, softmax(ẑ_c)] (B×(code_dim + K)); the metric
        suite's "cluster" metric runs k-means on it beside the argmax rule."""
        z_n, logits = self.code_of(x)
        return torch.cat([z_n, logits.softmax(dim=1)], dim=1)

    def cluster_kmeans(self, x_all: torch.Tensor, k: Optional[int] = None, seed: Optional[int] = None) -> torch.Tensor:
        """The authors' protocol: k-means (k = K by default, 10 restarts) on ``cluster_features`` of all images."""
        from lsgan.metrics.clustering import kmeans_ids  # lsgan.metrics (scipy): evaluation only, not needed to train

        k = self.num_conditions if k is None else int(k)
        seed = 0 if seed is None else int(seed)
        return kmeans_ids(self.cluster_features(x_all), k, seed)

"""Latent-space conditioning (Durall, Ho, Pfreundt, Keuper, "Latent Space Conditioning on GANs",
VISAPP 2021): ``method=coupled``.

A frozen extractor E maps each real image x_i to a feature vector f_i; G draws G(z ⊕ f_i).
The discriminator judges *pairs* (Algorithm 1): [x_i, G(z, f_i)] is false, [x_i, nearest(x_i)]
true and [x_i, farthest(x_i)] false, with neighbours found by L1 distance between features in
the batch (or a larger pool). So G must produce an image that belongs *with* x_i, i.e. one
like x_i's feature-space neighbours. Schedule (Algorithm 2): G every iteration, D when
i mod n == 0 (``method.n_gen``; the base class runs it).

``loss`` selects the ablation (the paper's Table 3): full (all three terms), proto_a (adv only),
proto_b (adv + same), proto_c (adv + diff), and feature_cgan — the "standard approach": a cGAN
whose label is replaced by the feature vector (projection D on (x, f), BCE loss, no pairs).
The condition is continuous (``num_conditions`` = 0): ``sample(n, condition=images or features)``
generates "more like this"; ``condition_of(x)`` is E(x).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from lsgan.errors import ConfigError
from lsgan.data.batch import Batch
from lsgan.data.pairs import nearest_farthest
from lsgan.losses import d_bce, mode_seeking_loss, triple_coupled_d_loss, triple_coupled_g_loss
from lsgan.methods.registry import register
from lsgan.methods.base import GANMethod, MethodConfig, inference
from lsgan.nets import build_discriminator, build_generator
from lsgan.nets.pair import PairDiscriminator

# loss name -> which pair terms (adv, same, diff) are on; feature_cgan uses no pairs.
PAIR_TERMS = {
    "full": (True, True, True),
    "proto_a": (True, False, False),
    "proto_b": (True, True, False),
    "proto_c": (True, False, True),
}


@dataclass
class CoupledConfig(MethodConfig):
    name: str = "coupled"
    z_dim: int = 128                # noise size (G's input is z ⊕ f)
    n_gen: int = 2                  # Algorithm 2: G every iteration, D when i mod n_gen == 0
    adv_weight: float = 1.0         # λ_adv: weight of L_adv (generated partner is false)
    same_weight: float = 1.0        # λ_same: weight of L_same (nearest real partner is true)
    diff_weight: float = 1.0        # λ_diff: weight of L_diff (farthest real partner is false)
    adv_loss: str = "ns"            # BCE game on pairs, G's loss: ns (non-saturating −log D) | minimax (saturating log(1 − D))
    mode_seeking_weight: float = 0.0  # weight of MSGAN's mode-seeking term in G's loss (0 = off, the paper)
    feature_weight: float = 0.0     # weight of 1 - cos(E(G(z, f)), f) in G's loss: the sample shows the exemplar's features (0 = off, the paper)
    realism_weight: float = 0.0     # weight of an unconditional real/fake game on single images (a second, ordinary D) beside the pairs (0 = off, the paper)
    pair_p: float = 1.0             # L_p distance between features for nearest / farthest (paper: L1)
    pair_pool: int = 0              # extra random training examples searched for partners (0 = batch only)
    bank_size: int = 1024           # training features kept for unconditional sample() (random exemplars)
    grid_rows: int = 10             # sample-grid exemplars (one row each: real image, then samples)


@register
class Coupled(GANMethod):
    Config = CoupledConfig
    LOSSES = ("full", "proto_a", "proto_b", "proto_c", "feature_cgan")
    ADV_LOSSES = ("ns", "minimax")  # D's loss is the BCE of its pair terms (the paper's Eq. 1); no hinge / wgan_gp form
    accepts_exemplars = True  # sample(n, condition=images): lsgan.sample / the metric suite use exemplars

    @classmethod
    def check_config(cls, cfg) -> None:
        m = cfg.method
        from lsgan.features import check_extractor_config

        check_extractor_config(cfg.extractor)
        if cfg.model.arch == "mlp":
            raise ConfigError("model.arch=mlp is not accepted by method=coupled (it pairs images); "
                              "accepted values: dcgan, resnet")
        for name in ("adv_weight", "same_weight", "diff_weight", "mode_seeking_weight", "feature_weight", "realism_weight"):
            if float(m[name]) < 0:
                raise ConfigError(f"method.{name}={m[name]}: must be >= 0")
        if float(m.pair_p) <= 0:
            raise ConfigError(f"method.pair_p={m.pair_p}: must be > 0 (1 = L1, 2 = L2)")
        if int(m.pair_pool) < 0 or int(m.bank_size) < 1 or int(m.grid_rows) < 1:
            raise ConfigError("method.pair_pool >= 0, method.bank_size >= 1 and method.grid_rows >= 1 are required")
        if cfg.loss.name != "feature_cgan" and int(cfg.data.batch_size) < 2 and int(m.pair_pool) == 0:
            raise ConfigError(f"data.batch_size={cfg.data.batch_size}: pairs need at least 2 images per batch")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the frozen extractor was named ``extractor`` call it ``E``
        for key in [k for k in state_dict if k.startswith(prefix + "E.")]:
            state_dict[prefix + "extractor." + key[len(prefix) + 2:]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ nets
    def build(self) -> None:
        from lsgan.features import extractor_for_method

        shape = tuple(int(s) for s in self.data_info.shape)
        if len(shape) != 3:
            raise ConfigError(f"dataset={self.data_info.name} is not image data; method=coupled needs images")
        # E: frozen (stays in eval mode); a submodule, so checkpoints carry the exact extractor that was used.
        self.extractor = extractor_for_method(self.cfg, shape)
        self.feat_dim = int(self.extractor.out_dim)
        self.G = build_generator(self.cfg.model, self.latent_dim + self.feat_dim, shape)
        if self.cfg.loss.name == "feature_cgan":
            # Projection D with the feature vector in place of the label (ClassEmbedding takes float B×K).
            self.D = build_discriminator(self.cfg.model, shape, num_classes=self.feat_dim)
        else:
            # each pair in random order: D cannot use position; ``single`` judges one image for the realism term
            self.D = PairDiscriminator(self.cfg.model, shape, single=self.realism_weight > 0)
        rows = int(self.mcfg.grid_rows)
        # Exemplars for unconditional sampling and sample grids; filled at fit start from the
        # training split, saved with the checkpoint so a loaded model samples the same way.
        self.register_buffer("bank_feats", torch.zeros(int(self.mcfg.bank_size), self.feat_dim))
        self.register_buffer("grid_images", torch.zeros((rows,) + shape))
        self.register_buffer("grid_feats", torch.zeros(rows, self.feat_dim))
        self.register_buffer("exemplars_ready", torch.zeros((), dtype=torch.bool))
        self._train_set = None

    @property
    def realism_weight(self) -> float:
        return 0.0 if self.cfg.loss.name == "feature_cgan" else float(self.mcfg.realism_weight)

    @property
    def pair_terms(self) -> Tuple[bool, bool, bool]:
        return PAIR_TERMS.get(self.cfg.loss.name, (False, False, False))

    # ------------------------------------------------------------------ features
    @inference
    def condition_of(self, x: torch.Tensor) -> torch.Tensor:
        """E(x): the feature vector that generates more images like x (B×d)."""
        return self.extractor(x.to(self.device)).reshape(len(x), -1).float()

    def batch_features(self, batch: Batch) -> torch.Tensor:
        """The batch's cached features, or E(x) on the fly when none are attached."""
        return batch.feat.float() if batch.feat is not None else self.condition_of(batch.x)

    def g_input(self, z: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.normalize(f)], dim=1)

    def normalize(self, f: torch.Tensor) -> torch.Tensor:
        """Unit-RMS features, so f enters G at the scale of z whatever E's scale."""
        f = f.reshape(len(f), -1).float()
        return f / f.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        from lsgan.features import features_for_datamodule

        feats = features_for_datamodule(self.cfg, dm)
        dm.attach_features(feats)
        self._train_set = dm.train_set
        if not bool(self.exemplars_ready):
            self.fill_exemplars(self._train_set)

    @torch.no_grad()
    def fill_exemplars(self, train_set) -> None:
        """Seeded (own torch.Generator, global RNG untouched) random training exemplars for the bank and the grid."""
        n = len(train_set)
        gen = torch.Generator().manual_seed(int(self.cfg.get("seed", 0)) + 4321)
        order = torch.randperm(n, generator=gen)

        def pick(k: int) -> torch.Tensor:
            return order.repeat((k + n - 1) // n)[:k]  # cycles when the split is smaller than k

        def feats_of(idx: torch.Tensor) -> torch.Tensor:
            if train_set.features is not None:
                return train_set.features[idx].to(self.device)
            return torch.cat([self.condition_of(train_set.images(c)) for c in idx.split(256)])

        bank_idx = pick(len(self.bank_feats))
        self.bank_feats.copy_(feats_of(bank_idx))
        grid_idx = bank_idx[: len(self.grid_feats)] if len(bank_idx) >= len(self.grid_feats) else pick(len(self.grid_feats))
        self.grid_images.copy_(train_set.images(grid_idx).to(self.device))
        self.grid_feats.copy_(feats_of(grid_idx))
        self.exemplars_ready.fill_(True)

    def partners(self, batch: Batch, f: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(nearest, farthest) real partner images of each batch image (Algorithm 1)."""
        pool_n = int(self.mcfg.pair_pool)
        p = float(self.mcfg.pair_p)
        if pool_n == 0:
            near, far = nearest_farthest(f, p)
            return batch.x[near], batch.x[far]
        ts = self._train_set
        if ts is None or ts.features is None:
            raise ConfigError("method.pair_pool > 0 needs cached training features (train through lsgan.run.train)")
        extra = torch.randint(0, len(ts), (pool_n,))
        pool_ids = torch.cat([batch.index.cpu(), extra])
        pool = torch.cat([f, ts.features[extra].to(f.device).float()])
        near, far = nearest_farthest(f, p, pool=pool, query_ids=batch.index.cpu(), pool_ids=pool_ids)
        pool_x = torch.cat([batch.x, ts.images(extra).to(batch.x.device)])
        return pool_x[near], pool_x[far]

    # ------------------------------------------------------------------ steps
    def d_step(self, batch: Batch) -> Dict[str, torch.Tensor]:
        x, f = batch.x, self.batch_features(batch)
        with torch.no_grad():
            fake = self.G(self.g_input(self.draw_z(len(x)), f))
        if self.cfg.loss.name == "feature_cgan":
            cond = self.normalize(f)
            d_real, d_fake = self.D(x, cond), self.D(fake, cond)
            loss = d_bce(d_real, d_fake)
            self.step_opt("d", loss)
            return {"loss_d": loss.detach(), "d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
        _, use_same, use_diff = self.pair_terms
        m = self.mcfg
        d_adv = self.D(x, fake)
        d_same = d_diff = None
        logs = {}
        if use_same or use_diff:
            near_x, far_x = self.partners(batch, f)
            if use_same:
                d_same = self.D(x, near_x)
                logs["d_same"] = d_same.mean().detach()
            if use_diff:
                d_diff = self.D(x, far_x)
                logs["d_diff"] = d_diff.mean().detach()
        loss = triple_coupled_d_loss(d_adv, d_same, d_diff, m.adv_weight,
                                     m.same_weight if use_same else 0.0, m.diff_weight if use_diff else 0.0)
        if self.realism_weight > 0:
            realism = d_bce(self.D.judge(x), self.D.judge(fake))
            loss = loss + self.realism_weight * realism
            logs["d_realism"] = realism.detach()
        self.step_opt("d", loss)
        return {"loss_d": loss.detach(), "d_adv": d_adv.mean().detach(), **logs}

    def g_step(self, batch: Batch) -> Dict[str, torch.Tensor]:
        x, f = batch.x, self.batch_features(batch)
        n = len(x)
        ms = float(self.mcfg.mode_seeking_weight) > 0
        # with the mode-seeking term, each exemplar is drawn twice (two noises) in one G pass
        z = self.draw_z(2 * n if ms else n)
        f_all = torch.cat([f, f]) if ms else f
        fake_all = self.G(self.g_input(z, f_all))
        fake = fake_all[:n]
        saturating = self.mcfg.adv_loss == "minimax"
        if self.cfg.loss.name == "feature_cgan":
            d_fake = self.D(fake, self.normalize(f))
        else:
            d_fake = self.D(x, fake)
        loss = triple_coupled_g_loss(d_fake, saturating=saturating)
        logs = {"g_adv": loss.detach()}
        if self.realism_weight > 0:
            realism = triple_coupled_g_loss(self.D.judge(fake), saturating=saturating)  # the same BCE form, on one image
            loss = loss + self.realism_weight * realism
            logs["g_realism"] = realism.detach()
        if ms:
            seek = mode_seeking_loss(fake_all, z, torch.arange(n, device=z.device).repeat(2))
            loss = loss + float(self.mcfg.mode_seeking_weight) * seek
            logs["mode_seeking"] = seek.detach()
        if float(self.mcfg.feature_weight) > 0:
            # E is frozen but differentiable: the gradient reaches G's images, never E
            agree = F.cosine_similarity(self.extractor(fake_all).reshape(len(fake_all), -1).float(), f_all, dim=1).mean()
            loss = loss + float(self.mcfg.feature_weight) * (1 - agree)
            logs["feature_cos"] = agree.detach()
        self.step_opt("g", loss)
        return {"loss_g": loss.detach(), **logs}

    # ------------------------------------------------------------------ generation
    def features_for(self, condition, n: int) -> torch.Tensor:
        """n×d features from a condition: a grid row (int), images B×C×H×W, or features B×d / d.

        B must be 1 (all n from it), n (one each) or divide n (each exemplar n/B times, in blocks).
        """
        if isinstance(condition, int):
            self._require_exemplars()
            if not 0 <= condition < len(self.grid_feats):
                raise ValueError(f"condition: grid row ids must be in 0..{len(self.grid_feats) - 1}")
            f = self.grid_feats[condition:condition + 1]
        else:
            c = torch.as_tensor(condition, device=self.device)
            if c.dim() == len(self.data_info.shape) + 1 and tuple(c.shape[1:]) == tuple(self.data_info.shape):
                f = self.condition_of(c.float())
            elif c.dim() in (1, 2) and c.shape[-1] == self.feat_dim:
                f = c.float().reshape(-1, self.feat_dim)
            else:
                raise ValueError(f"condition: expected images B×{'×'.join(map(str, self.data_info.shape))} "
                                 f"or features B×{self.feat_dim}, got shape {tuple(c.shape)}")
        b = len(f)
        if b == n:
            return f
        if b == 0 or n % b:
            raise ValueError(f"condition: {b} exemplars cannot be spread over n={n} samples (need 1, n, or a divisor of n)")
        return f.repeat_interleave(n // b, dim=0)

    def _require_exemplars(self) -> None:
        if not bool(self.exemplars_ready):
            raise ValueError("condition: no training exemplars stored yet (train first); pass images or features")

    @inference
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        z = z.to(self.device)
        if condition is None:
            self._require_exemplars()
            f = self.bank_feats[torch.arange(len(z), device=self.device) % len(self.bank_feats)]
        else:
            f = self.features_for(condition, len(z))
        return self.generator(self.g_input(z, f))

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        """n images; condition None draws random stored training exemplars' features."""
        g = self.generator if use_ema else self.G
        if condition is None:
            self._require_exemplars()
            f = self.bank_feats[torch.randint(0, len(self.bank_feats), (n,), device=self.device)]
        else:
            f = self.features_for(condition, n)
        return g(self.g_input(self.draw_z(n), f))

    def grid_conditions(self):
        return list(range(len(self.grid_feats)))

    @inference
    def sample_grid(self) -> torch.Tensor:
        """One row per stored exemplar: the real image, then 9 samples from its features."""
        self._require_exemplars()
        z = self.fixed_z[:9]
        rows = [torch.cat([self.grid_images[r:r + 1], self.sample_from_noise(z, condition=r)]) for r in self.grid_conditions()]
        return torch.cat(rows)

"""Baselines: the unconditional SNGAN and the label-conditioned cGAN (the upper bound).

SNGAN: Miyato et al., "Spectral Normalization for GANs" (ICLR 2018). cGAN: the same nets with
BigGAN-style conditional BatchNorm in G and a projection discriminator (Miyato & Koyama,
ICLR 2018), trained on the dataset's labels — with ``data.label_noise`` those labels are noisy,
which is the robustness baseline of the coupled paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from lsgan.errors import ConfigError
from lsgan.data.batch import Batch
from lsgan.losses import ADVERSARIAL
from lsgan.methods.registry import register
from lsgan.methods.base import GANMethod, MethodConfig, inference
from lsgan.nets import build_discriminator, build_generator


@dataclass
class SNGANConfig(MethodConfig):
    name: str = "sngan"
    z_dim: int = 128          # latent size
    adv_loss: str = "hinge"   # adversarial form: hinge | ns | minimax | wgan_gp
    gp_weight: float = 10.0   # λ of the gradient penalty (adv_loss=wgan_gp only)


@register
class SNGAN(GANMethod):
    Config = SNGANConfig
    LOSSES = ("full",)
    ADV_LOSSES = tuple(ADVERSARIAL)

    def build(self) -> None:
        k = self.label_classes
        self.G = build_generator(self.cfg.model, self.latent_dim, self.data_info.shape, num_classes=k)
        self.D = build_discriminator(self.cfg.model, self.data_info.shape, num_classes=k)
        self.d_loss_fn, self.g_loss_fn = ADVERSARIAL[self.mcfg.adv_loss]

    @property
    def label_classes(self) -> int:
        """Classes G and D are conditioned on (0: unconditional)."""
        return 0

    def fake_labels(self, n: int) -> Optional[torch.Tensor]:
        return None

    def d_step(self, batch: Batch):
        n = len(batch)
        y_fake = self.fake_labels(n)
        with torch.no_grad():
            fake = self.G(self.draw_z(n), y_fake)
        d_real = self.D(batch.x, batch.y)
        d_fake = self.D(fake, y_fake)
        # wgan_gp's penalty is on the unconditional critic only (cgan refuses wgan_gp)
        return self.adversarial_d_step(batch.x, fake, d_real, d_fake)

    def g_step(self, batch: Batch):
        n = len(batch)
        y_fake = self.fake_labels(n)
        loss = self.g_loss_fn(self.D(self.G(self.draw_z(n), y_fake), y_fake))
        self.step_opt("g", loss)
        return {"loss_g": loss.detach()}

    @inference
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        return self.generator(z.to(self.device))

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        if condition is not None:
            raise ValueError("condition: method=sngan is unconditional; pass condition=None")
        g = self.generator if use_ema else self.G
        return g(self.draw_z(n))


@dataclass
class CGANConfig(MethodConfig):
    name: str = "cgan"
    z_dim: int = 128          # latent size
    adv_loss: str = "hinge"   # adversarial form: hinge | ns | minimax (no wgan_gp: the penalty is the unconditional critic's)


@register
class CGAN(SNGAN):
    Config = CGANConfig
    ADV_LOSSES = ("hinge", "ns", "minimax")
    uses_labels = True

    @property
    def label_classes(self) -> int:
        if self.data_info.num_classes < 1:
            raise ConfigError(f"method=cgan needs labels, but dataset={self.data_info.name} has none")
        return self.data_info.num_classes

    @property
    def num_conditions(self) -> int:
        return self.label_classes

    def fake_labels(self, n: int) -> torch.Tensor:
        return torch.randint(0, self.label_classes, (n,), device=self.device)

    @inference
    def sample_from_noise(self, z: torch.Tensor, condition=None) -> torch.Tensor:
        z = z.to(self.device)
        return self.generator(z, self.condition_ids(len(z), condition, "class"))

    @inference
    def sample(self, n: int, condition=None, use_ema: bool = True) -> torch.Tensor:
        g = self.generator if use_ema else self.G
        return g(self.draw_z(n), self.condition_ids(n, condition, "class"))

    @inference
    def condition_of(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("method=cgan is conditioned on labels, not on images; use an evaluator classifier")

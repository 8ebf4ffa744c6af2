"""Generators, discriminators and encoders, built from the ``model`` config node.

``build_generator(model_cfg, z_dim, out_shape, num_classes=0)``: ``G(z, y=None)`` → B×C×H×W in
[-1, 1] (B×d unbounded for vector data); y is int ids (B,) or float label vectors B×K.
``build_discriminator(model_cfg, in_shape, num_classes=0)``: ``D(x, y=None)`` → logits (B,),
``D.forward_parts(x, y)`` → (unary, projection), ``D.features(x)`` → B×D.feat_dim.
``build_encoder(model_cfg, in_shape, out_dim, spectral_norm=False)``: ``E(x)`` → B×out_dim.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from lsgan.errors import check_choice
from lsgan.nets.dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from lsgan.nets.ema import EMA
from lsgan.nets.layers import (ClassEmbedding, ConditionalBatchNorm,
                               ConcatEncoder, ConditionalBatchNorm2d, Discriminator, Encoder, SharedTrunkEncoder,
                               add_spectral_norm_, score_and_encode)
from lsgan.nets.mlp import MLPDiscriminator, MLPEncoder, MLPGenerator
from lsgan.nets.resnet import ResNetDiscriminator, ResNetEncoder, ResNetGenerator

ARCHS = ("dcgan", "resnet", "mlp")  # model.arch: the network families built below

__all__ = [
    "ARCHS", "build_generator", "build_discriminator", "build_encoder", "EMA", "ClassEmbedding",
    "ConditionalBatchNorm", "ConditionalBatchNorm2d", "Discriminator",
    "ConcatEncoder", "Encoder", "SharedTrunkEncoder", "add_spectral_norm_", "score_and_encode",
]


def _shape(shape: Sequence[int]) -> tuple:
    return tuple(int(s) for s in shape)


def build_generator(model_cfg, z_dim: int, out_shape: Sequence[int], num_classes: int = 0) -> nn.Module:
    """G for ``model_cfg.arch`` producing ``out_shape`` samples; conditional when num_classes > 0."""
    arch, out_shape = model_cfg.arch, _shape(out_shape)
    check_choice("model.arch", arch, ARCHS)
    if arch == "mlp":
        return MLPGenerator(z_dim, out_shape, model_cfg.mlp_width, model_cfg.mlp_depth, num_classes,
                            model_cfg.g_batchnorm)
    cls = DCGANGenerator if arch == "dcgan" else ResNetGenerator
    return cls(z_dim, out_shape, model_cfg.g_width, num_classes, model_cfg.g_batchnorm)


def build_discriminator(model_cfg, in_shape: Sequence[int], num_classes: int = 0) -> nn.Module:
    """D for ``model_cfg.arch`` on ``in_shape`` inputs (2C channels for a pair D); projection when num_classes > 0."""
    arch, in_shape = model_cfg.arch, _shape(in_shape)
    check_choice("model.arch", arch, ARCHS)
    if arch == "mlp":
        return MLPDiscriminator(in_shape, model_cfg.mlp_width, model_cfg.mlp_depth, num_classes,
                                model_cfg.spectral_norm)
    cls = DCGANDiscriminator if arch == "dcgan" else ResNetDiscriminator
    return cls(in_shape, model_cfg.d_width, num_classes, model_cfg.spectral_norm)


def build_encoder(model_cfg, in_shape: Sequence[int], out_dim: int, spectral_norm: bool = False) -> nn.Module:
    """The arch's D trunk with a linear head to ``out_dim`` (ClusterGAN's E, NEMGAN's h1, slcGAN's C)."""
    arch, in_shape = model_cfg.arch, _shape(in_shape)
    check_choice("model.arch", arch, ARCHS)
    if arch == "mlp":
        return MLPEncoder(in_shape, out_dim, model_cfg.mlp_width, model_cfg.mlp_depth, spectral_norm)
    cls = DCGANEncoder if arch == "dcgan" else ResNetEncoder
    return cls(in_shape, out_dim, model_cfg.d_width, spectral_norm)

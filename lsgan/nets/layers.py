"""Building blocks every architecture shares: spectral norm, class conditioning (embedding and
conditional BatchNorm), weight init, and the discriminator / encoder heads put on an arch's trunk.

A *trunk* is any module mapping a batch to B×feat_dim features and exposing ``feat_dim``; the
arch modules (dcgan, resnet, mlp) provide one each, so the heads below are written once.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from lsgan.errors import ConfigError

SN_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
INITS = ("normal", "xavier", "default")
# Resolutions the convolutional archs build: 4×4 (or 7×7 for 28 px) doubled n times.
IMAGE_SIZES = (28, 32, 64, 128)


# --------------------------------------------------------------------------- spectral norm
def add_spectral_norm_(net: nn.Module) -> nn.Module:
    """Spectral-normalise every conv / linear weight of ``net`` in place (Miyato et al., 2018).

    Uses torch's parametrization implementation: one power iteration per training-mode forward,
    none in eval mode, and u, v kept as buffers. Buffers (not hooks) are what let a deepcopy (EMA),
    DDP's buffer broadcast and a state_dict round-trip carry the power-iteration state. Call it
    after weight init: registration runs 15 power iterations on the weight as it is then.
    """
    targets = [m for m in net.modules()
               if isinstance(m, SN_LAYERS) and not parametrize.is_parametrized(m, "weight")]
    for m in targets:
        spectral_norm(m)
    return net


# --------------------------------------------------------------------------- init
def init_layer_(layer: nn.Module, how: str, gain: float = 1.0) -> nn.Module:
    """Initialise one conv / linear layer: ``normal`` N(0, 0.02) as DCGAN (Radford et al., 2016),
    ``xavier`` uniform with ``gain`` as the SNGAN ResNet code, ``default`` keeps torch's. Bias → 0."""
    if how not in INITS:
        raise ValueError(f"init={how!r} is not accepted; accepted values: {', '.join(INITS)}")
    if how == "default":
        return layer
    if how == "normal":
        nn.init.normal_(layer.weight, 0.0, 0.02)
    else:
        nn.init.xavier_uniform_(layer.weight, gain)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


# --------------------------------------------------------------------------- shapes
def check_image_shape(arch: str, shape: Sequence[int]) -> Tuple[int, int]:
    """(C, size) of a square C×size×size image shape a conv arch can build, else ConfigError."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ConfigError(f"model.arch={arch} needs image data shaped (C,H,W), got {shape}; "
                          f"accepted values for vector data: model.arch=mlp")
    c, h, w = shape
    if h != w or h not in IMAGE_SIZES:
        raise ConfigError(f"data.size={h if h == w else f'{h}x{w}'} is not supported by model.arch={arch}; "
                          f"accepted values: {', '.join(map(str, IMAGE_SIZES))} (square)")
    return c, h


def base_and_doublings(size: int) -> Tuple[int, int]:
    """Smallest feature map and the number of ×2 steps between it and ``size`` (28 = 7·2², else 4·2ⁿ)."""
    base = 7 if size == 28 else 4
    return base, int(round(math.log2(size // base)))


# --------------------------------------------------------------------------- conditioning
class ClassEmbedding(nn.Module):
    """Class code e(y) = W·y from int ids (B,) or float label vectors B×K (one-hot or soft).

    One linear map K→embed_dim without bias, so id k gives column k of W, exactly as an
    ``nn.Embedding`` lookup, and a soft label (e.g. a clustering net's softmax) the matching
    mixture of columns. Serves as BigGAN's shared embedding (Brock et al., 2019) and as the
    projection discriminator's embedding (Miyato & Koyama, 2018); being an ``nn.Linear``
    inside, it is spectral-normalised with the rest of a D.
    """

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes}: a class embedding needs at least one class")
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.proj = nn.Linear(num_classes, embed_dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Orthonormal class codes (when K ≤ embed_dim): one-hot classes start independent and
        # at unit scale, so a CBN fed by them can learn any per-class gain and bias.
        nn.init.orthogonal_(self.proj.weight)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(y):
            if y.dim() != 1:
                raise ValueError(f"labels: int class ids must be shaped (B,), got {tuple(y.shape)}")
            return self.proj.weight[:, y.long()].t()
        if y.dim() != 2 or y.shape[1] != self.num_classes:
            raise ValueError(f"labels: float label vectors must be shaped (B, {self.num_classes}), "
                             f"got {tuple(y.shape)}")
        return self.proj(y)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose affine part depends on a conditioning code c (BigGAN, Brock et al., 2019):
    out = BN(x)·(1 + W_g c) + W_b c, with BN itself non-affine.

    W_g, W_b start at zero, so an untrained net normalises as an ordinary BN with gain 1 and bias 0
    for every class (how SNGAN initialises its categorical BN). With ``cond_dim=0`` it is a plain
    affine BatchNorm that ignores c, so generator blocks use one norm type either way. The inner
    module is a real ``nn.BatchNorm*d``, so ``SyncBatchNorm.convert_sync_batchnorm`` finds it.
    """

    def __init__(self, num_features: int, cond_dim: int, dims: int = 2):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims={dims} is not accepted; accepted values: 1, 2")
        self.cond_dim = cond_dim
        self.bn = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features, affine=cond_dim == 0)
        if cond_dim > 0:
            # Raw parameters rather than nn.Linear so arch-wide conv/linear inits leave them at zero.
            self.gain_weight = nn.Parameter(torch.zeros(num_features, cond_dim))
            self.bias_weight = nn.Parameter(torch.zeros(num_features, cond_dim))

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.bn(x)
        if self.cond_dim == 0:
            return h
        if c is None:
            raise ValueError("conditional BatchNorm needs the conditioning code c")
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        gain = 1.0 + F.linear(c, self.gain_weight).view(shape)
        bias = F.linear(c, self.bias_weight).view(shape)
        return h * gain + bias


class ConditionalBatchNorm2d(ConditionalBatchNorm):
    """Conditional BatchNorm over B×C×H×W feature maps (BigGAN, Brock et al., 2019)."""

    def __init__(self, num_features: int, cond_dim: int):
        super().__init__(num_features, cond_dim, dims=2)


class NoNorm(nn.Module):
    """Stands in for a generator norm when ``model.g_batchnorm`` is off; ignores the code c."""

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        return x


class GeneratorBase(nn.Module):
    """Class conditioning shared by every generator.

    With classes and BatchNorm, one shared class embedding feeds every conditional BN
    (BigGAN, Brock et al., 2019). Without BatchNorm there is nothing to modulate, so the
    embedding is concatenated to z instead (cGAN, Mirza & Osindero, 2014). Subclasses build
    their first layer on ``in_dim`` inputs and their norms with ``make_norm``.
    """

    def __init__(self, z_dim: int, num_classes: int = 0, batchnorm: bool = True, embed_dim: int = 128):
        super().__init__()
        self.z_dim = z_dim
        self.num_classes = num_classes
        self.batchnorm = batchnorm
        self.embed = ClassEmbedding(num_classes, embed_dim) if num_classes > 0 else None
        self.cond_dim = embed_dim if num_classes > 0 and batchnorm else 0
        self.in_dim = z_dim + (embed_dim if num_classes > 0 and not batchnorm else 0)

    def make_norm(self, num_features: int, dims: int = 2) -> nn.Module:
        if not self.batchnorm:
            return NoNorm()
        return ConditionalBatchNorm(num_features, self.cond_dim, dims)

    def condition(self, z: torch.Tensor, y: Optional[torch.Tensor]):
        """(first-layer input, code for the norms or None) from a latent and optional labels."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be shaped (B, {self.z_dim}), got {tuple(z.shape)}")
        if self.embed is None:
            if y is not None:
                raise ValueError("this generator is unconditional (num_classes=0) but labels y were given")
            return z, None
        if y is None:
            raise ValueError(f"this generator is conditional (num_classes={self.num_classes}): labels y are required")
        code = self.embed(y)
        if self.cond_dim:
            return z, code
        return torch.cat([z, code], dim=1), None


# --------------------------------------------------------------------------- heads
class Discriminator(nn.Module):
    """D(x, y) = w·φ(x) + b + <e(y), φ(x)> on a trunk φ: a linear unary head and, with classes,
    the projection term of Miyato & Koyama (2018). ``forward_parts`` returns the two terms apart.

    ``y=None`` on a conditional D gives the unary term alone (the projection needs a label).
    With ``spectral_norm`` every conv / linear weight, the embedding included, is normalised.
    """

    compile_also = ("trunk",)  # forward_parts / features are called directly too (slcgan, shared encoders)

    def __init__(self, trunk: nn.Module, num_classes: int = 0, init: str = "normal",
                 spectral_norm: bool = True):
        super().__init__()
        self.trunk = trunk
        self.feat_dim = trunk.feat_dim
        self.num_classes = num_classes
        self.head = init_layer_(nn.Linear(self.feat_dim, 1), init)
        self.embed = None
        if num_classes > 0:
            self.embed = ClassEmbedding(num_classes, self.feat_dim)
            init_layer_(self.embed.proj, init)
        if spectral_norm:
            add_spectral_norm_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x), B×feat_dim: the trunk's penultimate features."""
        return self.trunk(x)

    def forward_parts(self, x: torch.Tensor, y: Optional[torch.Tensor] = None):
        """(unary (B,), joint (B,)); joint is zero when no label is given."""
        h = self.trunk(x)
        unary = self.head(h).squeeze(1)
        if y is None:
            return unary, torch.zeros_like(unary)
        if self.embed is None:
            raise ValueError("this discriminator is unconditional (num_classes=0) but labels y were given")
        return unary, (self.embed(y) * h).sum(dim=1)

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        unary, joint = self.forward_parts(x, y)
        return unary + joint

    def unary_from_features(self, h: torch.Tensor) -> torch.Tensor:
        """The unary score (B,) of trunk features h = ``features(x)`` (lets a shared-trunk encoder
        and D's score use one trunk pass)."""
        return self.head(h).squeeze(1)


class Encoder(nn.Module):
    """An arch's discriminator trunk with a linear head to ``out_dim`` (ClusterGAN's encoder,
    Mukherjee et al., 2019; also NEMGAN's h1 and slcGAN's clustering net).

    Unlike a D, whose raw score scale does not matter, an encoder's outputs carry the condition
    back to G (a code to regress, a softmax to match), so they must start at unit scale. A D
    trunk does not give that: the DCGAN trunk with N(0, 0.02) weights outputs ~1e-5 and the
    ResNet trunk's sum pooling ~10 (a softmax over either is uniform or one-hot). So the trunk
    is re-initialised variance-preserving (He et al., 2015: fan-in normal with the trunk's
    leaky-ReLU gain) and its features are standardised per sample (a LayerNorm without affine,
    so no batch statistics and no train / eval difference) before a head whose outputs then
    start with std ≈ 1. With this the conditioning terms reach G at init with gradients of the
    adversarial term's order or above instead of ~1,000× below it (tests/test_conditioning_scale.py).
    """

    def __init__(self, trunk: nn.Module, out_dim: int, spectral_norm: bool = False, leak: float = 0.0):
        super().__init__()
        self.trunk = trunk
        self.feat_dim = trunk.feat_dim
        self.out_dim = out_dim
        for m in trunk.modules():
            if isinstance(m, SN_LAYERS):
                scale_preserving_init_(m, leak)
        self.norm, self.head = unit_scale_head(self.feat_dim, out_dim)
        if spectral_norm:
            add_spectral_norm_(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """B×feat_dim penultimate features (standardised per sample)."""
        return self.norm(self.trunk(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def unit_scale_head(feat_dim: int, out_dim: int) -> Tuple[nn.Module, nn.Linear]:
    """(per-sample standardisation of B×feat_dim features, linear head to out_dim with outputs of
    std ≈ 1): the head every encoder puts on its features."""
    head = nn.Linear(feat_dim, out_dim)
    nn.init.normal_(head.weight, 0.0, 1.0 / math.sqrt(feat_dim))
    nn.init.zeros_(head.bias)
    return nn.LayerNorm(feat_dim, elementwise_affine=False), head


def scale_preserving_init_(layer: nn.Module, leak: float = 0.0) -> nn.Module:
    """He (fan-in) normal init for a conv / linear followed by a (leaky) ReLU of slope ``leak``;
    bias → 0. Keeps activation variance roughly constant through the layer."""
    nn.init.kaiming_normal_(layer.weight, a=leak, mode="fan_in", nonlinearity="leaky_relu")
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)
    return layer


class SharedTrunkEncoder(nn.Module):
    """An encoder head on a discriminator's trunk (InfoGAN's Q network, Chen et al., 2016).

    The features it reads are D's, trained to tell real from generated images, so a code G
    hides from them in changes D does not look at cannot be read back, and the encoder applies
    to real images as well as it applies to generated ones. Only the head (standardised features
    → linear, as :class:`Encoder`) is this module's; the trunk stays D's (its optimizer, its
    state_dict entry), held by reference, not as a submodule.
    """

    def __init__(self, discriminator: "Discriminator", out_dim: int):
        super().__init__()
        self._discriminator = [discriminator]  # a list: not registered, so D's parameters are not E's
        self.feat_dim = discriminator.feat_dim
        self.out_dim = out_dim
        self.norm, self.head = unit_scale_head(self.feat_dim, out_dim)

    @property
    def discriminator(self) -> "Discriminator":
        return self._discriminator[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.discriminator.features(x))

    def from_trunk(self, h: torch.Tensor) -> torch.Tensor:
        """Outputs from D's trunk features h (B×feat_dim), computed once for D's score and E."""
        return self.head(self.norm(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.from_trunk(self.discriminator.features(x))


class ConcatEncoder(nn.Module):
    """Encoders read side by side: the output is their outputs concatenated along dim 1.

    ClusterGAN's ``encoder=hybrid`` is one: z_n read from D's trunk (a :class:`SharedTrunkEncoder`,
    so a code G hides in changes D does not look at cannot be read back) beside a cluster net of
    its own (which clusters real images better than D's trunk can while it also plays D)."""

    compile_also = ("parts",)  # each part is also called alone (clustergan's hybrid encoder)

    def __init__(self, *parts: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(x) for part in self.parts], dim=1)


def score_and_encode(discriminator: "Discriminator", encoder: nn.Module, x: torch.Tensor):
    """(D's unary score (B,), encoder output) of x, with one trunk pass when the encoder is (or,
    for a :class:`ConcatEncoder`, holds) a :class:`SharedTrunkEncoder` on this D."""
    if isinstance(encoder, ConcatEncoder):
        h = discriminator.features(x)
        outs = [part.from_trunk(h) if isinstance(part, SharedTrunkEncoder) and part.discriminator is discriminator
                else part(x) for part in encoder.parts]
        return discriminator.unary_from_features(h), torch.cat(outs, dim=1)
    if isinstance(encoder, SharedTrunkEncoder) and encoder.discriminator is discriminator:
        h = discriminator.features(x)
        return discriminator.unary_from_features(h), encoder.from_trunk(h)
    return discriminator(x), encoder(x)

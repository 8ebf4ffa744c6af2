"""The batched natural-image views (crop / flip / colour jitter) against torchvision's per-image
transforms: the same pixels for a given box and factor, the same distributions of boxes and views."""
import torch
from scipy.stats import ks_2samp
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from lsgan.augment import AugmentConfig, MultiViewAugment, _shift_hue, color_jitter, crop_boxes, resize_boxes


def test_resize_boxes_matches_torchvision_resized_crop_and_flip():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 20, 20)
    top, left = torch.tensor([3.0, 0, 0, 10, 5, 0]), torch.tensor([5.0, 0, 7, 2, 0, 0])
    h, w = torch.tensor([12.0, 20, 13, 10, 15, 20]), torch.tensor([9.0, 20, 13, 18, 11, 1])
    mirror = torch.tensor([False, True, False, True, False, False])
    out = resize_boxes(x, top, left, h, w, mirror)
    for i in range(6):
        ref = TF.resized_crop(x[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), size=[20, 20], antialias=True)
        ref = TF.horizontal_flip(ref) if mirror[i] else ref
        assert torch.allclose(out[i], ref, atol=1e-5), i


def test_crop_boxes_follow_torchvision_distribution():
    torch.manual_seed(0)
    scale, ratio, n = (0.3, 1.0), (0.5, 2.0), 3000
    top, left, h, w = crop_boxes(n, 24, 32, scale, ratio)
    assert (h >= 1).all() and (w >= 1).all() and (top + h <= 24).all() and (left + w <= 32).all()
    ref = torch.tensor([v2.RandomResizedCrop.get_params(torch.zeros(1, 24, 32), list(scale), list(ratio))
                        for _ in range(n)], dtype=torch.float32)  # (top, left, h, w)
    for ours, theirs in ((h * w, ref[:, 2] * ref[:, 3]), (w / h, ref[:, 3] / ref[:, 2]), (top, ref[:, 0]),
                         (left, ref[:, 1])):
        assert ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-3


def test_hue_shift_matches_torchvision():
    x = torch.rand(4, 3, 8, 8)
    for shift in (-0.3, -0.05, 0.1, 0.5):
        assert torch.allclose(_shift_hue(x, torch.full((4,), shift)), TF.adjust_hue(x, shift), atol=1e-5)


def test_views_follow_torchvision_per_image_pipeline():
    """Per-view summary statistics (mean, spread, colour balance, left-right asymmetry) of the batched
    views and of torchvision's v2 pipeline applied image by image come from the same distribution."""
    cfg = AugmentConfig()
    torch.manual_seed(1)
    base = torch.rand(1, 3, 16, 16) * 2 - 1
    x = base.expand(800, -1, -1, -1).contiguous()
    ours = MultiViewAugment(cfg, (3, 16, 16))(x)
    pipeline = v2.Compose([v2.RandomResizedCrop(16, scale=tuple(cfg.crop_scale), ratio=tuple(cfg.crop_ratio),
                                                antialias=True),
                           v2.RandomHorizontalFlip(cfg.flip),
                           v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)])
    theirs = torch.stack([pipeline(img) for img in (x + 1) / 2]) * 2 - 1

    def stats(v):
        return [v.mean((1, 2, 3)), v.std((1, 2, 3)), v[:, 0].mean((1, 2)) - v[:, 2].mean((1, 2)),
                v[..., :8].mean((1, 2, 3)) - v[..., 8:].mean((1, 2, 3))]

    for a, b in zip(stats(ours), stats(theirs)):
        assert ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-3


def test_gray_views_skip_saturation_and_hue_and_stay_in_range():
    torch.manual_seed(0)
    x = torch.rand(32, 1, 12, 12) * 2 - 1
    views = MultiViewAugment(AugmentConfig(), (1, 12, 12))(x)
    assert views.shape == x.shape and views.min() >= -1 and views.max() <= 1
    # with only saturation and hue on, a gray batch is unchanged
    unit = (x + 1) / 2
    assert torch.equal(color_jitter(unit, 0.0, 0.0, 0.4, 0.1), unit)

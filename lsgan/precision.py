"""``trainer.precision=auto``: bf16-mixed where the hardware computes bf16 natively, else 32-true.

Why: bf16 autocast is a speed-up only where matmuls and convolutions run in bf16 natively. On a
CPU with AVX512-BF16 or AMX the MNIST recipes ran 1.4-1.6x faster in bf16-mixed (README, Speed);
on an AVX2-only CPU (an AMD EPYC Zen 2 here) oneDNN emulates bf16 and the same recipes ran
~10x *slower* than in fp32. The recipes that chose bf16 for speed therefore ask for ``auto``; an
explicit ``bf16-mixed`` is honoured, with a one-line warning where it is emulated.

The choice reads CPU / GPU feature flags, not a timing, so the same machine always resolves the
same way (and every DDP rank alike). Weights stay fp32 either way, so a checkpoint resumes at either
precision; it records the one it was trained at, and a resume says when that differs (lsgan.run).
"""
from __future__ import annotations

import warnings

import torch

AUTO = "auto"


def _on_gpu(accelerator: str) -> bool:
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def native_bf16(accelerator: str) -> bool:
    """Whether the device training runs on computes bf16 matmuls / convolutions natively."""
    if _on_gpu(accelerator):
        # Ampere and later; older GPUs emulate bf16 (slower than fp32, as on an AVX2 CPU)
        if not torch.cuda.is_available():
            return False
        # not torch.cuda.is_bf16_supported(): since torch 2.3 it also says yes where bf16 is emulated
        return bool(torch.version.hip) or torch.cuda.get_device_capability()[0] >= 8
    if accelerator not in ("cpu", "auto"):
        return False  # mps / tpu: not measured here, so the safe choice
    cpu = torch.cpu
    flags = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, f, lambda: False)() for f in flags)


def describe_device(accelerator: str) -> str:
    if _on_gpu(accelerator) and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({torch.backends.cpu.get_cpu_capability()})"


def resolve_precision(precision: str, accelerator: str, warn: bool = True) -> str:
    """The Lightning precision to train at: ``auto`` resolved; a bf16 request on emulating hardware warned."""
    if precision == AUTO:
        return "bf16-mixed" if native_bf16(accelerator) else "32-true"
    if warn and precision.startswith("bf16") and not native_bf16(accelerator):
        warnings.warn(f"trainer.precision={precision}: {describe_device(accelerator)} has no native bf16, so it is "
                      f"emulated and slower than 32-true (trainer.precision=auto picks 32-true here)", stacklevel=2)
    return precision

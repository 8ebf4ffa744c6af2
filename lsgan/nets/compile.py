"""``trainer.compile``: torch.compile of a method's trained nets, in place."""
from __future__ import annotations

from torch import nn


def compile_trained_nets(method: nn.Module, trainer_cfg) -> None:
    """Compile each child net of ``method`` that trains, in place, so state_dict keys, checkpoints, EMA copies
    and resume are as without it; nothing unless ``trainer_cfg.compile``, and nothing the second time (Lightning
    may call its model hook again). Frozen nets (coupled's extractor) and the EMA copies that only sample stay
    eager."""
    if not bool(trainer_cfg.get("compile", False)) or getattr(method, "_compiled", False):
        return
    options = dict(backend=str(trainer_cfg.get("compile_backend", "inductor")), mode=trainer_cfg.get("compile_mode"))
    for net in method.children():
        if any(p.requires_grad for p in net.parameters()):
            net.compile(**options)
            # Submodules that methods also reach without the net's forward (D.features, C.probs,
            # a ConcatEncoder's parts), compiled in place too so every path runs compiled.
            for name in getattr(net, "compile_also", ()):
                sub = getattr(net, name)
                for module in (sub if isinstance(sub, nn.ModuleList) else [sub]):
                    module.compile(**options)
    method._compiled = True

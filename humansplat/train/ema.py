"""Exponential moving average of a model's parameters (the weights we ship and evaluate)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """shadow <- d * shadow + (1 - d) * param after every optimizer step, with the usual
    warm-up d_t = min(decay, (1 + t) / (10 + t)) so early averages are not stuck at the
    random init. Kept in fp32; checkpointable (``state_dict``/``load_state_dict``)."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters()
                       if p.requires_grad}

    def current_decay(self) -> float:
        t = self.num_updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].mul_(d).add_(p.detach().float(), alpha=1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for n, p in model.named_parameters():
            if n in self.shadow:
                p.copy_(self.shadow[n].to(p.dtype))

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Run with the EMA weights swapped in, then restore the live ones."""
        backup = {n: p.detach().clone() for n, p in model.named_parameters() if n in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in backup:
                        p.copy_(backup[n])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {k: v.clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k in self.shadow:
            self.shadow[k].copy_(state["shadow"][k])

"""Exponential moving average of a module's parameters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class EMA:
    """Shadow copy of ``module``'s parameters, updated with decay ``min(decay, (1 + n) / (10 + n))``."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: p.detach().clone() for k, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        params = dict(module.named_parameters())
        torch._foreach_lerp_(list(self.shadow.values()), [params[k].detach() for k in self.shadow], 1.0 - d)

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``module``."""
        saved = {k: p.detach().clone() for k, p in module.named_parameters()}
        self.copy_to(module)
        try:
            yield
        finally:
            with torch.no_grad():
                for k, p in module.named_parameters():
                    p.copy_(saved[k])

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for k, p in module.named_parameters():
            p.copy_(self.shadow[k])

    def state_dict(self) -> dict[str, object]:
        return {"num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        if shadow.keys() != self.shadow.keys():
            raise ValueError("EMA state does not match the model's parameters")
        self.num_updates = int(state["num_updates"])  # type: ignore[call-overload]
        self.shadow = {
            k: v.to(self.shadow[k].device, self.shadow[k].dtype) for k, v in shadow.items() if isinstance(v, Tensor)
        }

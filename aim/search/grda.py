"""GRDA: generalized regularized dual averaging (Chao & Cheng, 2019), the optimizer AutoFIS/AIM use for gates.

GRDA keeps a dual-averaging accumulator ``v_t = v_{t-1} - lr * grad_t`` that starts from the parameter's initial
value, and sets the parameter to the soft threshold ``sign(v_t) * max(|v_t| - l_t, 0)`` with an L1 threshold
``l_t = c * lr**(0.5 + mu) * t**mu`` that keeps growing. A coordinate whose accumulated gradient does not outrun
the threshold becomes *exactly* zero and stays there, which is what selecting architecture needs: GRDA trains only
the architecture parameters (alpha, the feature-interaction gates; beta, the embedding-dimension gates), while Adam
trains every other weight on the same mini-batch, so the network weights are never shrunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class GRDA(torch.optim.Optimizer):
    """Soft-thresholded dual averaging; ``c`` scales the L1 threshold and ``mu`` (0 < mu < 1) its growth in t."""

    def __init__(self, params: Iterable[Any], lr: float = 0.01, c: float = 0.0005, mu: float = 0.8) -> None:
        if not lr > 0.0:
            raise ValueError(f"GRDA: lr must be > 0, got {lr}")
        if not c >= 0.0:
            raise ValueError(f"GRDA: c must be >= 0, got {c}")
        if not 0.0 < mu < 1.0:
            raise ValueError(f"GRDA: mu must be in the open interval (0, 1), got {mu}")
        super().__init__(params, {"lr": lr, "c": c, "mu": mu})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Do one GRDA step for every parameter that has a gradient; returns the closure's loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, c, mu = float(group["lr"]), float(group["c"]), float(group["mu"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("GRDA does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["threshold"] = 0.0
                    state["accumulator"] = p.detach().clone(memory_format=torch.preserve_format)
                t = state["step"] = int(state["step"]) + 1
                # Incremental form: equals c * lr**(0.5 + mu) * t**mu for a constant lr, and still works if lr changes.
                state["threshold"] = float(state["threshold"]) + c * lr ** (0.5 + mu) * (t**mu - (t - 1) ** mu)
                v = state["accumulator"]
                v.add_(p.grad, alpha=-lr)
                p.copy_(v.sign() * (v.abs() - state["threshold"]).clamp_(min=0.0))
        return loss

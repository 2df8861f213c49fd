"""Optimizers whose update is Keras's, where PyTorch's differs by more than its defaults.

Keras's RMSprop divides by ``sqrt(velocity + epsilon)``; PyTorch's by ``sqrt(velocity) + epsilon``. With
Keras's epsilon of 1e-7 the two differ wherever gradients are small (sqrt(1e-7) ≈ 3e-4 against 1e-7),
which changes how the course's models train, so cnnlab uses Keras's form.
"""

from __future__ import annotations

import torch


class KerasRMSprop(torch.optim.Optimizer):
    """velocity = rho·velocity + (1 − rho)·g²;  w −= lr·g / sqrt(velocity + epsilon)  (Keras 3, no momentum)."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, epsilon: float = 1e-7, weight_decay: float = 0.0):
        for name, value, low, high in (("lr", lr, 0, None), ("rho", rho, 0, 1), ("epsilon", epsilon, 0, None),
                                       ("weight_decay", weight_decay, 0, None)):
            if value < low or (high is not None and value >= high):
                raise ValueError(f"KerasRMSprop: {name} out of range. Received: {name}={value!r}")
        super().__init__(params, {"lr": lr, "rho": rho, "epsilon": epsilon, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:  # "step" counts updates, as torch's optimizers (and Keras's iterations) do
                    state["step"] = torch.tensor(0.0)
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                velocities.append(state["velocity"])
            torch._foreach_mul_(velocities, group["rho"])
            torch._foreach_addcmul_(velocities, grads, grads, value=1 - group["rho"])
            denominators = torch._foreach_add(velocities, group["epsilon"])
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])
        return loss

"""Optimizers by name with Keras's defaults, learning-rate schedules, and Keras's RMSprop update.

These are the textbook updates; ``cnnlab.engine`` runs RMSprop's in one compiled pass where it can.

Keras's RMSprop divides by ``sqrt(velocity + epsilon)``; PyTorch's by ``sqrt(velocity) + epsilon``. With
Keras's epsilon of 1e-7 the two differ wherever gradients are small (sqrt(1e-7) ≈ 3e-4 against 1e-7),
which changes how the course's models train, so cnnlab uses Keras's form.

torch.optim wraps ``add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict`` and the ``step``
of Adam, AdamW and SGD in guards for ``torch.compile``; the first call of any of them imports
``torch._dynamo``, 1.0–1.4 s of every training run's start-up on a 2-core CPU. cnnlab never compiles an
optimizer, so its classes call the functions under those guards (``__wrapped__``, kept by functools.wraps).
"""

from __future__ import annotations

import torch

from cnnlab import names


def _unguarded(function):
    return getattr(function, "__wrapped__", function)


class _WithoutCompileGuards:
    """Mixin for a torch.optim.Optimizer subclass: the base class's methods minus their torch.compile guards."""

    add_param_group = _unguarded(torch.optim.Optimizer.add_param_group)
    zero_grad = _unguarded(torch.optim.Optimizer.zero_grad)
    state_dict = _unguarded(torch.optim.Optimizer.state_dict)
    load_state_dict = _unguarded(torch.optim.Optimizer.load_state_dict)


def _plain_step(optimizer_class):
    # the guard's only other work is switching gradients off (``differentiable`` is False here): no_grad does that
    return torch.no_grad()(_unguarded(optimizer_class.step))


class Adam(_WithoutCompileGuards, torch.optim.Adam):
    step = _plain_step(torch.optim.Adam)


class AdamW(_WithoutCompileGuards, torch.optim.AdamW):
    step = _plain_step(torch.optim.AdamW)


class SGD(_WithoutCompileGuards, torch.optim.SGD):
    step = _plain_step(torch.optim.SGD)


class KerasRMSprop(_WithoutCompileGuards, torch.optim.Optimizer):
    """velocity = rho·velocity + (1 − rho)·g²;  w −= lr·g / sqrt(velocity + epsilon)  (Keras 3, no momentum)."""

    def __init__(self, params, lr: float = 1e-3, rho: float = 0.9, epsilon: float = 1e-7, weight_decay: float = 0.0):
        for name, value, low, high in (
            ("lr", lr, 0, None),
            ("rho", rho, 0, 1),
            ("epsilon", epsilon, 0, None),
            ("weight_decay", weight_decay, 0, None),
        ):
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
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:  # "step" counts updates, as torch's optimizers (and Keras's iterations) do;
                    # a number, not a tensor: ten tensor additions a step took 26 µs (1% of the course MLP's step)
                    state["step"] = 0
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                elif state["velocity"].stride() != p.stride():
                    # a checkpoint's velocity comes back contiguous, and fit may turn the weights channels_last
                    # after loading: checked here, at the step, it follows the weight's layout whenever it changed
                    state["velocity"] = torch.empty_like(p).copy_(state["velocity"])
                state["step"] += 1
                velocities.append(state["velocity"])
            self._update(params, grads, velocities, group)
        return loss

    @staticmethod
    def _update(params, grads, velocities, group) -> None:
        """The update of one parameter group, on lists of tensors (torch's foreach kernels: five passes)."""
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        torch._foreach_mul_(velocities, group["rho"])
        torch._foreach_addcmul_(velocities, grads, grads, value=1 - group["rho"])
        denominators = torch._foreach_add(velocities, group["epsilon"])
        torch._foreach_sqrt_(denominators)
        torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])


# name -> (optimizer class, Keras's default learning rate, Keras's other defaults in torch's terms).
# Adam and AdamW keep torch's update, whose epsilon is Keras's scaled by sqrt(1 - beta2^t) (< 1e-7 here).
OPTIMIZERS = {
    "rmsprop": (KerasRMSprop, names.OPTIMIZERS["rmsprop"], {"rho": 0.9, "epsilon": 1e-7}),
    "adam": (Adam, names.OPTIMIZERS["adam"], {"betas": (0.9, 0.999), "eps": 1e-7}),
    "adamw": (AdamW, names.OPTIMIZERS["adamw"], {"betas": (0.9, 0.999), "eps": 1e-7, "weight_decay": 0.004}),
    "sgd": (SGD, names.OPTIMIZERS["sgd"], {"momentum": 0.0}),
}


def make_optimizer(model, config):
    """The optimizer ``config`` (a FitConfig or TrainConfig) names, with Keras's defaults where it gives none."""
    optimizer_class, default_lr, defaults = OPTIMIZERS[config.optimizer]
    options = dict(defaults)
    if config.momentum is not None and config.optimizer == "sgd":
        options["momentum"] = config.momentum
    if config.weight_decay is not None:
        options["weight_decay"] = config.weight_decay
    if config.betas is not None and "betas" in options:
        options["betas"] = tuple(config.betas)
    # one fused kernel over all parameters where torch has one (about 3x faster than foreach for Adam on a CPU);
    # KerasRMSprop always uses foreach kernels
    kernel = {} if optimizer_class is KerasRMSprop else {"fused": True}
    return optimizer_class(model.parameters(), lr=config.lr or default_lr, **kernel, **options)


def learning_rate(schedule: str, base: float, step: int, total_steps: int) -> float:
    """'constant', or 'onecycle': linear warm-up to ``base`` over the first 25% of steps, then linear decay to 0."""
    if schedule == "constant":
        return base
    peak = max(1, int(0.25 * total_steps))
    return base * (step + 1) / peak if step < peak else base * max(0.0, (total_steps - step) / (total_steps - peak))

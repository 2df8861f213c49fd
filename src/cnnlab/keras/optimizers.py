"""``cnnlab.keras.optimizers``: RMSprop, Adam and SGD with Keras's arguments and defaults.

Each is a description until a model's ``fit`` builds it on the model's weights (``build``), as a cnnlab
optimizer (``cnnlab.nn.optimizers``: Keras's RMSprop update, torch's Adam and SGD with Keras's epsilon). It is
built once per model and kept, so a second ``fit`` goes on with the same moments, as in Keras.
``learning_rate`` can be read and set at any time (what LearningRateScheduler and ReduceLROnPlateau do).
"""

from __future__ import annotations

# Keras's arguments every optimizer takes -> the values cnnlab implements (the first one is Keras's default)
COMMON_DEFAULTS = {
    "weight_decay": (None, 0, 0.0),
    "clipnorm": (None,),
    "clipvalue": (None,),
    "global_clipnorm": (None,),
    "use_ema": (False,),
    "loss_scale_factor": (None,),
    "gradient_accumulation_steps": (None,),
}
IGNORED_WITHOUT_EMA = ("ema_momentum", "ema_overwrite_frequency")  # only used with use_ema=True


class Optimizer:
    """The base class: the learning rate and Keras's common arguments; subclasses make the torch optimizer."""

    cnnlab_name = ""  # the name in cnnlab.names.OPTIMIZERS
    slots_per_weight = 0  # Keras's optimizer variables per model weight (Keras's summary counts them)

    def __init__(self, learning_rate, name=None, **kwargs):
        kind = type(self).__name__
        for argument, value in kwargs.items():
            if argument in IGNORED_WITHOUT_EMA:
                continue
            if argument not in COMMON_DEFAULTS:
                raise ValueError(f"Unrecognized keyword arguments passed to {kind}: {{{argument!r}: {value!r}}}")
            if value not in COMMON_DEFAULTS[argument]:
                raise NotImplementedError(
                    f"{kind}: cnnlab implements {argument}={COMMON_DEFAULTS[argument][0]!r} only. "
                    f"Received: {argument}={value!r}"
                )
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ValueError(
                f"{kind}: learning_rate must be a positive number. Received: learning_rate={learning_rate!r}"
            )
        self.name = name or kind.lower()
        self._learning_rate = float(learning_rate)
        self.torch_optimizer = None  # made by build()

    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is not None:
            return self.torch_optimizer.param_groups[0]["lr"]
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        value = float(value)
        self._learning_rate = value
        if self.torch_optimizer is not None:
            for group in self.torch_optimizer.param_groups:
                group["lr"] = value

    @property
    def iterations(self) -> int:
        """How many updates the optimizer has made."""
        if self.torch_optimizer is None:
            return 0
        steps = [state["step"] for state in self.torch_optimizer.state.values() if "step" in state]
        return int(steps[0]) if steps else 0

    def build(self, module):
        """The torch optimizer over ``module``'s weights, made at the first call and kept."""
        if self.torch_optimizer is None:
            self.torch_optimizer = self._make(module.parameters())
        return self.torch_optimizer

    def _make(self, parameters):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": self.learning_rate}


def _refuse(kind: str, argument: str, value, implemented) -> None:
    if value != implemented:
        raise NotImplementedError(
            f"{kind}: cnnlab implements {argument}={implemented!r} only. Received: {argument}={value!r}"
        )


class RMSprop(Optimizer):
    """Keras's RMSprop: velocity = rho·velocity + (1 − rho)·g²; w −= lr·g / sqrt(velocity + epsilon)."""

    cnnlab_name, slots_per_weight = "rmsprop", 1

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        _refuse("RMSprop", "momentum", momentum, 0.0)
        _refuse("RMSprop", "centered", centered, False)
        self.rho, self.epsilon = rho, epsilon

    def _make(self, parameters):
        from cnnlab.nn.optimizers import KerasRMSprop

        return KerasRMSprop(parameters, lr=self._learning_rate, rho=self.rho, epsilon=self.epsilon)


class Adam(Optimizer):
    cnnlab_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self.slots_per_weight = 3 if amsgrad else 2  # first and second moments (and their running maximum)

    def _make(self, parameters):
        from cnnlab.nn.optimizers import Adam as TorchAdam

        return TorchAdam(
            parameters,
            lr=self._learning_rate,
            betas=(self.beta_1, self.beta_2),
            eps=self.epsilon,
            amsgrad=self.amsgrad,
            fused=True,  # one kernel over all weights (see cnnlab.nn.optimizers.make_optimizer)
        )


class SGD(Optimizer):
    """Keras's SGD; with momentum m, torch's update b = m·b + g, w −= lr·b is Keras's for a constant rate."""

    cnnlab_name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov
        self.slots_per_weight = 1 if momentum else 0

    def _make(self, parameters):
        from cnnlab.nn.optimizers import SGD as TorchSGD

        return TorchSGD(parameters, lr=self._learning_rate, momentum=self.momentum, nesterov=self.nesterov)


BY_NAME = {"rmsprop": RMSprop, "adam": Adam, "sgd": SGD}


def get(identifier) -> Optimizer:
    """An optimizer from what ``compile`` takes: an Optimizer, or a name ('rmsprop', 'adam', 'sgd')."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in BY_NAME:
        return BY_NAME[identifier.lower()]()
    raise ValueError(
        f"Could not interpret optimizer identifier; cnnlab.keras knows {', '.join(BY_NAME)} or an "
        f"optimizer of cnnlab.keras.optimizers. Received: optimizer={identifier!r}"
    )

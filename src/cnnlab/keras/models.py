"""``cnnlab.keras.models``: Keras's ``Sequential`` and ``load_model``, on a cnnlab model.

A ``Sequential`` here holds a cnnlab model (``self.module``, a ``cnnlab.nn.sequential.Sequential``) and gives it
Keras's API: ``add``, ``compile``, ``fit``, ``evaluate``, ``predict``, ``summary``, the weights in Keras's
layouts, ``save``. ``fit`` is cnnlab's training loop (``cnnlab.training.loop.fit``, through ``cnnlab.engine``),
with Keras's arguments, callbacks and display.

Arrays are what Keras takes and gives: samples first, images (N, H, W, C), any numeric dtype cast to float32
and never rescaled (the course divides by 255 itself); gray images (N, H, W) for an (H, W, 1) input get their
channel axis, as Keras 3 adds it. Labels are integers or one-hot rows, as the loss says.

Model files are ``cnnlab.keras.saving``'s: cnnlab model folders, and soon Keras's .keras and .h5 files.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from cnnlab.keras import backend, losses, optimizers, saving
from cnnlab.keras import metrics as keras_metrics
from cnnlab.keras.callbacks import Callback, History, LoopBridge, ProgbarLogger
from cnnlab.keras.layers import image_shape
from cnnlab.keras.progress import bar_line, resolve_verbose
from cnnlab.keras.summary import format_keras_summary
from cnnlab.nn.layers import Input, Layer
from cnnlab.nn.sequential import Sequential as Module

__all__ = ["Sequential", "load_model"]

KERAS_BATCH = 32  # Keras's default batch size, for fit and for the step counts evaluate and predict show


def _refuse(method: str, **given) -> None:
    """Keras arguments cnnlab does not implement: each is (value received, the one value cnnlab takes)."""
    for name, (value, default) in given.items():
        if value is not default and value != default:
            raise NotImplementedError(
                f"{method}: cnnlab implements {name}={default!r} only. Received: {name}={value!r}"
            )


class Sequential:
    """Keras's Sequential model on a cnnlab model (``self.module``)."""

    def __init__(self, layers=None, trainable=True, name=None):
        _refuse("Sequential", trainable=(trainable, True))
        self.module = Module(name=name or backend.unique_name("sequential"))
        self.optimizer: optimizers.Optimizer | None = None
        self.loss: losses.Loss | None = None
        self.metric_names: list[str] = []
        self.compiled = False
        self.history: History | None = None
        for layer in layers or ():
            self.add(layer)

    @classmethod
    def from_module(cls, module: Module) -> Sequential:
        """The Keras model of a cnnlab model (one loaded from a folder, say)."""
        model = cls(name=module.name)
        model.module = module
        return model

    # --- the layers --------------------------------------------------------------------------------------

    def add(self, layer) -> None:
        if not isinstance(layer, (Layer, Input)):
            raise ValueError(f"Only cnnlab.keras layers can be added to a Sequential model. Received: {layer!r}")
        self.module.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self.module.layers)

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[layer.name for layer in self.layers]}.")

    @property
    def name(self) -> str:
        return self.module.name

    @property
    def built(self) -> bool:
        return self.module.input_shape is not None

    def build(self, input_shape) -> None:
        """Keras's ``build((None, 28, 28, 1))``: the batch axis first, as Keras writes it."""
        self.module.build(image_shape(tuple(input_shape)[1:]))

    @property
    def input_shape(self) -> tuple:
        self._require_built("input_shape")
        return (None, *self.module.input_shape)

    @property
    def output_shape(self) -> tuple:
        self._require_built("output_shape")
        return (None, *self.module.output_shape)

    @property
    def stop_training(self) -> bool:  # the loop reads the flag on the cnnlab model it trains
        return getattr(self.module, "stop_training", False)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.module.stop_training = value

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"Sequential '{self.name}' has not been built yet, so it has no {what}. Give the first layer an "
                "input_shape, start with Input(shape=...), or call the model (fit, predict) on data first"
            )

    # --- weights and summary -------------------------------------------------------------------------------

    def count_params(self) -> int:
        from cnnlab.nn.summary import summarize

        self._require_built("parameters")
        return summarize(self.module).total

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's ``get_weights()`` in order: Conv2D kernel (kh, kw, in, out) and bias, Dense (in, out)..."""
        self._require_built("weights")
        return [array for layer in self.layers for array in layer.get_weights()]

    def set_weights(self, weights) -> None:
        self._require_built("weights")
        counts = [len(layer.keras_weights()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(
                f"You called `set_weights(weights)` on model '{self.name}' with a weight list of length "
                f"{len(weights)}, but the model was expecting {sum(counts)} weights."
            )
        start = 0
        for layer, count in zip(self.layers, counts):
            layer.set_weights(weights[start : start + count])
            start += count

    def summary(self, line_length=None, positions=None, print_fn=None, **options) -> None:
        self._require_built("summary")
        (print_fn or print)(format_keras_summary(self))

    def save(self, filepath, overwrite=True, zipped=None, **kwargs) -> None:
        """A cnnlab model folder (model.json + model.safetensors); Keras's .keras files are not written yet."""
        saving.save_model(self, filepath, overwrite)

    def save_weights(self, filepath, overwrite=True) -> None:
        """The weights alone, as one safetensors file (Keras's .weights.h5 is not written yet)."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath) -> None:
        saving.load_weights(self, filepath)

    # --- training and use --------------------------------------------------------------------------------

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        run_eagerly=False,  # cnnlab always runs eagerly: the same numbers either way
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
    ) -> None:
        """Choose the optimizer (a name or an optimizer), the loss (a name, function or Loss) and the metrics."""
        _refuse("compile", loss_weights=(loss_weights, None), weighted_metrics=(weighted_metrics, None))
        _refuse("compile", steps_per_execution=(steps_per_execution, 1))
        if loss is None:
            raise ValueError("compile: give a loss, e.g. loss='categorical_crossentropy'. Received: loss=None")
        if metrics is not None and not isinstance(metrics, (list, tuple)):
            raise ValueError(f"Expected `metrics` argument to be a list or tuple. Received: metrics={metrics!r}")
        self.optimizer = optimizers.get(optimizer)
        self.loss = losses.get(loss)
        self.metric_names = [keras_metrics.get(metric) for metric in metrics or ()]
        self.compiled = True

    def _require_compiled(self) -> None:
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")

    def _log_keys(self, validation: bool) -> dict[str, str]:
        """Keras's log keys (sorted, then the 'val_' ones) -> the loop's."""
        keys = {name: "accuracy" if name in keras_metrics.ACCURACY_NAMES else name for name in self.metric_names}
        keys = dict(sorted({**keys, "loss": "loss"}.items()))
        return {**keys, **({f"val_{key}": f"val_{value}" for key, value in keys.items()} if validation else {})}

    def _inputs(self, x, what: str = "x") -> torch.Tensor:
        """x as Keras takes it: float32, samples first, the model's input shape; builds an unbuilt model."""
        if x is None:
            raise ValueError(f"{what}: cnnlab.keras takes NumPy arrays (or lists, tensors). Received: {what}=None")
        array = np.asarray(x.detach().cpu() if torch.is_tensor(x) else x)
        if array.dtype.kind not in "biuf" or array.ndim < 2:
            raise ValueError(
                f"{what} must be a numeric array of samples, (N, H, W, C) or (N, F). "
                f"Received: {what} of dtype {array.dtype} and shape {array.shape}"
            )
        array = array.astype(np.float32, copy=False)  # Keras casts to float32 and never rescales
        if not self.built:
            self.module.build(image_shape(array.shape[1:]))
        expected = self.module.input_shape
        if len(expected) == 3 and expected[-1] == 1 and array.shape[1:] == expected[:-1]:
            array = array[..., None]  # gray (N, H, W) for an (H, W, 1) model, as Keras 3 takes it
        if array.shape[1:] != expected:
            raise ValueError(
                f'Input 0 of layer "{self.name}" is incompatible with the layer: expected shape=(None, '
                f"{', '.join(map(str, expected))}), found shape={array.shape}"
            )
        return torch.from_numpy(array if array.flags.writeable else array.copy())

    def _device(self) -> torch.device:
        return next(self.module.parameters(), torch.empty(0)).device

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ) -> History:
        """Train on arrays ``x``, ``y`` with cnnlab's loop; returns the ``History`` (also ``self.history``).

        Keras's rules: batches of 32 unless told, ``validation_split`` the last fraction before shuffling (and
        ignored when ``validation_data`` is given), a new order every epoch unless ``shuffle=False``.
        """
        from cnnlab.engine.devices import tune_cpu
        from cnnlab.training.checkpoint import Progress
        from cnnlab.training.config import FitConfig
        from cnnlab.training.distributed import threads_per_process
        from cnnlab.training.loop import fit, split_validation

        self._require_compiled()
        _refuse("fit", class_weight=(class_weight, None), sample_weight=(sample_weight, None))
        _refuse("fit", steps_per_epoch=(steps_per_epoch, None), validation_steps=(validation_steps, None))
        _refuse("fit", validation_batch_size=(validation_batch_size, None), validation_freq=(validation_freq, 1))
        verbose = resolve_verbose(verbose)
        batch_size = KERAS_BATCH if batch_size is None else batch_size
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1). Received: validation_split={validation_split!r}")
        inputs, targets = self._inputs(x), self._labels(x, y)
        validation = None
        if validation_data is not None:  # Keras then ignores validation_split
            if len(validation_data) != 2:
                raise NotImplementedError(
                    "fit: validation_data must be (x_val, y_val); sample weights are not in cnnlab"
                )
            validation = (self._inputs(validation_data[0], "validation x"), self._labels(*validation_data))
        elif validation_split:
            (inputs, targets), validation = split_validation(inputs, targets, validation_split)
        config = FitConfig(
            epochs=epochs,
            batch_size=batch_size,
            optimizer=self.optimizer.cnnlab_name,
            loss=self.loss.name,
            from_logits=self.loss.from_logits,
            label_smoothing=self.loss.label_smoothing,
            shuffle=shuffle,
            seed=int(torch.randint(0, 2**31 - 1, ()).item()),  # from torch's generator: set_random_seed fixes it
            precision="float32",  # Keras's default dtype policy
        )
        history = History()
        keras_callbacks = [*([ProgbarLogger()] if verbose else []), *(callbacks or ()), history]
        params = {"verbose": verbose, "epochs": epochs, "steps": math.ceil(len(inputs) / batch_size)}
        for callback in keras_callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"fit: callbacks must be cnnlab.keras.callbacks.Callback objects. Received: {callback!r}"
                )
            callback.set_model(self)
            callback.set_params(params)
            if getattr(callback, "validation_data", False) is None:  # a callback that asks for fit's (Keras 2's way)
                callback.validation_data = validation
        bridge = LoopBridge(keras_callbacks, self._log_keys(validation is not None))
        progress = Progress(epoch=initial_epoch)
        torch_optimizer = self.optimizer.build(self.module)
        tune_cpu(threads_per_process())  # as cnnlab train does: torch's threads, freed memory kept for the next step
        fit(
            self.module,
            (inputs, targets),
            validation,
            config,
            callbacks=[bridge],
            optimizer=torch_optimizer,
            progress=progress,
            verbose=False,
            nan_guard=False,
        )
        return history

    def _labels(self, x, y) -> np.ndarray:
        if y is None:
            raise ValueError(
                "cnnlab.keras takes arrays x and y (datasets and generators are not in cnnlab yet). Received: y=None"
            )
        labels = np.asarray(y)
        if len(labels) != len(x):
            raise ValueError(
                f"x and y must hold the same number of samples. Received: x with {len(x)}, y with {len(labels)}"
            )
        return labels

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
        **kwargs,
    ):
        """``[loss, accuracy]`` (or the loss alone when compiled without metrics), means over the samples."""
        from cnnlab.training.evaluate import evaluate

        self._require_compiled()
        _refuse("evaluate", sample_weight=(sample_weight, None), steps=(steps, None), callbacks=(callbacks, None))
        verbose = resolve_verbose(verbose)
        started, inputs = time.perf_counter(), self._inputs(x)
        found = evaluate(
            self.module,
            inputs.to(self._device()),
            self._labels(x, y),
            with_per_class=False,
            precision="float32",
            loss=self.loss.name,
            from_logits=self.loss.from_logits,
        )
        results = {key: found[loop] for key, loop in self._log_keys(validation=False).items()}
        self._show(verbose, len(inputs), batch_size, time.perf_counter() - started, results)
        if return_dict:
            return results
        values = [results["loss"], *(results[key] for key in results if key != "loss")]
        return values if len(values) > 1 else values[0]

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None) -> np.ndarray:
        """The model's outputs as Keras gives them: probabilities after a softmax, images (N, H, W, C)."""
        _refuse("predict", steps=(steps, None), callbacks=(callbacks, None))
        verbose = resolve_verbose(verbose)
        started, inputs = time.perf_counter(), self._inputs(x)
        outputs = self._outputs(inputs).numpy()
        self._show(verbose, len(inputs), batch_size, time.perf_counter() - started, {})
        return outputs

    def __call__(self, inputs, training=False) -> torch.Tensor:
        _refuse("Sequential call", training=(training, False))
        return self._outputs(self._inputs(inputs))

    def _outputs(self, inputs: torch.Tensor) -> torch.Tensor:
        from cnnlab.training.evaluate import predict_logits

        logits = predict_logits(self.module, inputs.to(self._device()), precision="float32")
        outputs = self.module.finish(logits).cpu()
        return outputs.permute(0, 2, 3, 1).contiguous() if outputs.dim() == 4 else outputs  # (N, H, W, C)

    @staticmethod
    def _show(verbose: int, samples: int, batch_size, seconds: float, results: dict) -> None:
        """evaluate's and predict's one line: Keras's bar at its end (verbose 1) or its line (verbose 2)."""
        steps = math.ceil(samples / (batch_size or KERAS_BATCH))
        if verbose:
            print(bar_line(steps, steps, seconds, results))


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """A model saved by ``model.save`` or ``cnnlab train`` (a folder, or its model.json), or a Keras ``.keras`` /
    ``.h5`` file (read as data: nothing in it runs, whatever ``safe_mode`` says), not compiled."""
    if custom_objects:
        raise ValueError(f"load_model: cnnlab runs no custom code from a model file. Received: {custom_objects=}")
    return Sequential.from_module(saving.load_module(filepath))

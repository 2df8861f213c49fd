"""Losses and accuracy by Keras's names, computed from the logits ``Sequential.forward`` returns.

A model's last softmax or sigmoid is left out of ``forward`` (``Sequential.output_activation``), so each loss
knows what the outputs would have been: after a softmax, cross-entropy comes from the log-softmax of the logits;
after a sigmoid, binary cross-entropy from the logits themselves; both stay finite for any logit. Where the last
layer declares neither, the outputs are what Keras's losses take with ``from_logits=False``: probabilities,
rows rescaled to sum to 1 for the categorical losses, clipped to [1e-7, 1 - 1e-7]. ``from_logits=True`` says the
linear outputs are logits, as the Keras argument does.

``prepare_targets`` turns the labels a user gives into what the loss takes, once per fit, and says clearly
when they do not fit the loss or the model's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab import names

EPSILON = 1e-7  # Keras's backend epsilon: where probabilities are clipped
SPARSE = "sparse_categorical_crossentropy"


def loss_name(name: str) -> str:
    """Keras's name for a loss, aliases resolved ('mse' -> 'mean_squared_error')."""
    return names.LOSS_ALIASES.get(name, name)


def prepare_targets(loss: str, labels, output_shape: tuple[int, ...]) -> torch.Tensor:
    """int64 (N,) class indices for the sparse loss, float32 (N, *output_shape) for the others; checked."""
    labels = torch.as_tensor(labels)
    if loss == SPARSE:
        if labels.dim() == 2 and labels.shape[1] == 1:  # Keras takes (N, 1) as well: CIFAR-10's labels
            labels = labels[:, 0]
        classes = output_shape[0]
        if labels.dim() != 1:
            raise ValueError(
                f"loss='{SPARSE}' takes integer class labels shaped (N,) or (N, 1); for one-hot rows use "
                f"loss='categorical_crossentropy'. Received: labels of shape {tuple(labels.shape)}"
            )
        labels = labels.long()
        if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < classes):
            raise ValueError(
                f"loss='{SPARSE}': the model has {classes} outputs, so labels must be in [0, {classes - 1}]. "
                f"Received: labels from {int(labels.min())} to {int(labels.max())}"
            )
        return labels
    expected = (labels.shape[0], *output_shape) if labels.dim() else ()
    if labels.dim() == 1 and output_shape == (1,):  # Keras expands (N,) targets to the (N, 1) output
        labels = labels[:, None]
    if tuple(labels.shape) != expected:
        hint = (
            f"; integer labels need loss='{SPARSE}' (or to_categorical(y, {output_shape[0]}))"
            if loss == "categorical_crossentropy"
            else ""
        )
        raise ValueError(
            f"loss='{loss}' needs targets shaped like the model's output, (N, {', '.join(map(str, output_shape))})"
            f"{hint}. Received: targets of shape {tuple(labels.shape)}"
        )
    if labels.dim() == 4:  # image targets (N, H, W, C) -> the logits' (N, C, H, W)
        labels = labels.permute(0, 3, 1, 2)
    return labels.float()


def per_sample_loss(
    loss: str, logits: torch.Tensor, targets: torch.Tensor, output_activation: str, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The loss of every sample (B,), from float32 logits (B, ...) and targets from ``prepare_targets``.

    ``output_activation``: what ``forward`` left out ('softmax', 'sigmoid' or 'linear'; see the module's text).
    Over image outputs (B, C, H, W) the classes are the channels and each sample's loss is its pixels' mean.
    """
    if loss == "mean_squared_error":
        return _mean_per_sample((_outputs(logits, output_activation) - targets).square())
    if loss == "binary_crossentropy":
        if output_activation == "sigmoid":
            return _mean_per_sample(F.binary_cross_entropy_with_logits(logits, targets, reduction="none"))
        outputs = logits.clamp(EPSILON, 1 - EPSILON)
        return _mean_per_sample(-(targets * outputs.log() + (1 - targets) * (1 - outputs).log()))
    if output_activation == "softmax":  # class indices or probability rows: torch's cross_entropy takes both
        return _mean_per_sample(F.cross_entropy(logits, targets, reduction="none", label_smoothing=label_smoothing))
    probabilities = logits / logits.sum(1, keepdim=True)
    log_p = probabilities.clamp(EPSILON, 1 - EPSILON).log()
    if loss == SPARSE:
        return -log_p.gather(1, targets[:, None])[:, 0]
    return _mean_per_sample(-(targets * log_p).sum(1))


def per_sample_accuracy(logits: torch.Tensor, targets: torch.Tensor, output_activation: str) -> torch.Tensor:
    """Keras's 'accuracy' for each sample (B,), chosen as Keras chooses it, by the shapes.

    Integer labels: the top output is the label; one output: the output rounds to the target (threshold 0.5);
    otherwise the top output is the target's top class.
    """
    if targets.dtype == torch.int64:
        return (logits.argmax(1) == targets).float()
    if logits.shape[1] == 1:
        return _mean_per_sample(((_outputs(logits, output_activation) > 0.5) == (targets > 0.5)).float())
    return _mean_per_sample((logits.argmax(1) == targets.argmax(1)).float())


def loss_activation(output_activation: str, loss: str, from_logits: bool) -> str:
    """What the loss applies to the logits: the left-out activation, or with ``from_logits`` the loss's own."""
    if not from_logits or output_activation != "linear" or loss == "mean_squared_error":
        return output_activation
    return "sigmoid" if loss == "binary_crossentropy" else "softmax"


def _mean_per_sample(values: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B,): the mean over each sample's outputs (its pixels, its labels)."""
    return values.flatten(1).mean(1) if values.dim() > 1 else values


def _outputs(logits: torch.Tensor, output_activation: str) -> torch.Tensor:
    if output_activation == "softmax":
        return torch.softmax(logits, 1)
    return torch.sigmoid(logits) if output_activation == "sigmoid" else logits

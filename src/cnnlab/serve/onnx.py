"""ONNX export: a trained model as one ``.onnx`` file any ONNX runtime can run.

The exported graph takes ``image``: float32 (N, C, H, W) in [0, 1] (for MNIST models (N, 1, 28, 28),
light digits on black, as ``cnnlab.data.digits`` makes them), with N free, and returns ``logits``
(N, classes) and ``probabilities`` (N, classes), the softmax the model's last layer declares. Class
names, the dataset and cnnlab's version ride along as the model's metadata properties.

It uses torch's ``torch.export``-based exporter (``dynamo=True``), the default since PyTorch 2.9;
the older TorchScript exporter is deprecated. Before anything is written, the exported model is run
by onnxruntime on a random batch and compared with PyTorch: a file that would answer differently is
never written.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError

OPSET = 18
TOLERANCE = 1e-5  # largest |onnxruntime - PyTorch| accepted on the logits and probabilities
INSTALL_HINT = "pip install 'cnnlab[onnx]'"


class _LogitsAndProbabilities(torch.nn.Module):
    """The model with its softmax applied outside ``forward``, as ``Sequential.predict_proba`` does."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image):  # (N, C, H, W) -> (N, K), (N, K)
        logits = self.model(image)
        return logits, torch.softmax(logits, dim=1)


def _require_onnx():
    """The onnx package; onnxruntime and onnxscript (the exporter's translator) must be there too."""
    try:
        import onnx
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as missing:
        raise CnnlabError(
            f"ONNX export needs the onnx extra ({missing.name} is not installed); run: {INSTALL_HINT}"
        ) from None
    return onnx


def run_onnx(model_file: str | Path | bytes, images) -> tuple:
    """(logits, probabilities) as NumPy arrays from onnxruntime, for float32 ``images`` (N, C, H, W)."""
    _require_onnx()
    import onnxruntime

    source = model_file if isinstance(model_file, bytes) else str(model_file)
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    return tuple(session.run(["logits", "probabilities"], {"image": images}))


def onnx_difference(model, model_file: str | Path | bytes, images: torch.Tensor) -> float:
    """Largest |onnxruntime - PyTorch| over logits and probabilities for ``images`` (N, C, H, W)."""
    with torch.inference_mode():
        expected = _LogitsAndProbabilities(model.eval())(images)
    answers = run_onnx(model_file, images.numpy())
    return max(float((torch.from_numpy(got) - want).abs().max()) for got, want in zip(answers, expected))


def _export_program(module, example: torch.Tensor, opset: int):
    """torch.onnx.export with a free batch axis, its log lines and deprecation notices kept quiet."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]  # 'torchvision is not installed'...
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # notices about torch's own internals, not about this model
            return torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                verbose=False,
                input_names=["image"],
                output_names=["logits", "probabilities"],
                dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
            )
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(model, path: str | Path, opset: int = OPSET) -> float:
    """Write ``model`` to ``path`` as ONNX; return the max |onnxruntime - PyTorch| it was checked at.

    The file is written (atomically) only after onnxruntime has answered like PyTorch within TOLERANCE.
    """
    import cnnlab
    from cnnlab.files import write_atomic

    onnx = _require_onnx()
    path = Path(path)
    if model.input_shape is None or len(model.input_shape) != 3:
        raise CnnlabError(f"{path}: ONNX export takes image models (H, W, C). Received: input {model.input_shape}")
    if not path.parent.is_dir():
        raise CnnlabError(f"{path}: the folder {path.parent} does not exist; create it or choose another --onnx path")
    model = model.to("cpu").eval()
    height, width, channels = model.input_shape
    example = torch.rand(2, channels, height, width)  # batch 2: a batch of 1 would be specialised as a constant
    proto = _export_program(_LogitsAndProbabilities(model), example, opset).model_proto
    onnx.helper.set_model_props(
        proto,
        {
            "class_names": json.dumps(getattr(model, "class_names", None)),
            "dataset": str(getattr(model, "dataset", None)),
            "input": f"image: float32 (N, {channels}, {height}, {width}) in [0, 1]",
            "producer": f"cnnlab {cnnlab.__version__}",
        },
    )
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    difference = onnx_difference(model, data, torch.rand(8, channels, height, width))
    if not difference <= TOLERANCE:
        raise CnnlabError(
            f"{path}: onnxruntime's answers differ from PyTorch's by {difference:.2e} "
            f"(more than {TOLERANCE:.0e}); nothing was written"
        )
    write_atomic(path, data)
    return difference

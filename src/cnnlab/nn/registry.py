"""The course's models by name (the table is ``cnnlab.names.MODEL_CARDS``), built for the data at hand.

``create_model("cnn")`` is the course's first CNN for MNIST; ``create_model("cnn", input_shape=(64, 64, 3),
classes=2)`` is the same architecture for a folder of 64×64 colour pictures in two classes, as a Keras
user would write ``Dense(num_classes)``: the input shape and the last Dense layer's units follow the data.
Some registry models leave hyper-parameters open (``ModelCard.options``: the W&B lesson's first convolution's
width and height, the Dense layer's size, the dropout rate): ``create_model("cnn", options={"dense_layer_size":
256})`` builds the course CNN with 256 units there. ``parse_model`` takes anything the command line's --model takes.
"""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.names import MODEL_CARDS
from cnnlab.nn.sequential import Sequential
from cnnlab.nn.specs import KEYWORDS, SpecError, model_from_spec, parse_spec_line


def list_models() -> list[str]:
    return list(MODEL_CARDS)


def check_options(name: str, options: dict) -> None:
    """Refuse hyper-parameters model ``name`` does not have, and values of the wrong kind, naming the option."""
    for key, value in options.items():
        if name not in MODEL_CARDS:
            raise SpecError(f"model option {key}: only registry models ({', '.join(MODEL_CARDS)}) have options")
        problem = MODEL_CARDS[name].option_problem(key, value)
        if problem:
            raise SpecError(f"model option {key}: {problem}")


def create_model(name: str, input_shape=None, classes: int | None = None, options: dict | None = None) -> Sequential:
    """A registry model, freshly initialised.

    ``input_shape`` (H, W, C) replaces the course's; ``classes`` replaces the units of the last Dense layer
    (its softmax stays), so the model fits data of that shape with that many classes; ``options`` sets
    hyper-parameters the model leaves open (``cnnlab.names.MODEL_CARDS[name].options``).
    """
    if name not in MODEL_CARDS:
        raise SpecError(f"unknown model {name!r}; choose one of {', '.join(MODEL_CARDS)} or give a spec")
    if classes is not None and (not isinstance(classes, int) or isinstance(classes, bool) or classes < 1):
        raise ValueError(f"create_model: classes must be a positive integer. Received: classes={classes!r}")
    check_options(name, options or {})
    spec = parse_spec_line(MODEL_CARDS[name].spec_line(options))
    spec["name"] = name
    if classes is not None:
        spec["layers"][-1]["units"] = classes  # every registry model ends with dense(N,softmax)
    return model_from_spec(spec, input_shape=input_shape)


def parse_model(text: str, input_shape=None, classes: int | None = None, options: dict | None = None) -> Sequential:
    """A registry name, a path to a JSON spec, or a one-line spec -> a model.

    ``classes`` and ``options`` apply to registry models only: a spec written out by a user is built as written.
    """
    if text in MODEL_CARDS:
        return create_model(text, input_shape, classes, options)
    if options:
        check_options(text, options)  # refuses them, naming the option
    if text.endswith(".json"):
        path = Path(text)
        try:
            spec = json.loads(path.read_text())
        except OSError as problem:
            raise SpecError(f"{path}: cannot read the model spec ({problem.strerror})") from None
        except json.JSONDecodeError as problem:
            raise SpecError(f"{path}: not valid JSON (line {problem.lineno}: {problem.msg})") from None
        spec.setdefault("name", path.stem)
        return model_from_spec(spec, input_shape)
    if "(" not in text and "-" not in text and text.lower() not in KEYWORDS:
        raise SpecError(
            f"unknown model {text!r}; choose one of {', '.join(MODEL_CARDS)}, a .json spec or a "
            "one-line spec such as 'conv(32,3)-maxpool(2)-relu-flatten-dense(10,softmax)'"
        )
    spec = parse_spec_line(text)
    spec.setdefault("name", "custom")
    return model_from_spec(spec, input_shape)

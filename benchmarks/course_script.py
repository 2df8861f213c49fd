"""The course's Keras code as one script, for TF-Keras, Keras 3 on torch and cnnlab.keras alike.

    python benchmarks/course_script.py --keras tf        # Keras on TensorFlow (pip install tensorflow-cpu)
    python benchmarks/course_script.py --keras torch     # Keras 3 on its torch backend
    PYTHONPATH=src python benchmarks/course_script.py --keras cnnlab

Only the import lines differ between the three (the point of ``cnnlab.keras``); everything after them is the
same code. The sections follow the course (/work/shared/COURSE-NOTES.md):

* ``mlp``: reshape (-1, 784), Dense 512 → 256 → 128 → 32 relu → 10 softmax, rmsprop, batch 128, 10 epochs,
  validation_split 0.3;
* ``cnn``: the first CNN, Conv2D(32, 3×3) → MaxPool2D(2, 2) → Activation('relu') → Flatten → Dense(128, relu)
  → Dense(10, softmax), rmsprop, batch 128, 2 epochs, validation_split 0.3;
* ``exercise``: exercise 1's CNN, Conv2D(32, 3×3, relu) → MaxPool2D(2, 2) → Conv2D(64, 3×3, relu) →
  MaxPool2D(2, 2) → Flatten → Dense(128, relu) → Dense(10, softmax), same settings;
* ``filters``: Conv2D(1, (3, 3), strides=(2, 1)) on a 512×512 gray picture, its kernel set to ones by
  ``set_weights``, the ``padding='same'`` variant, MaxPool2D((5, 5)) and AvgPool2D((5, 5)) → 102×102; each
  output is checked against NumPy's.

The images come from the MNIST files cnnlab ships (``src/cnnlab/data/mnist``, read by the small IDX reader
below, the same for all three: nothing is downloaded); the 512×512 picture is synthetic and deterministic
(the course's ``scipy.misc.ascent()`` is a download in today's SciPy).

Prints, per section, ``model.fit``'s seconds and the test accuracy, then the whole script's seconds, and last
one line ``RESULT {json}`` with every figure (``course_compare.py`` reads it). ``--sections`` picks sections,
``--unseeded`` leaves out ``set_random_seed`` (for the spread of accuracies between runs).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

MNIST = Path(__file__).resolve().parent.parent / "src" / "cnnlab" / "data" / "mnist"
SECTIONS = ("mlp", "cnn", "exercise", "filters")
BACKENDS = {"tf": "tensorflow", "torch": "torch"}

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--keras", choices=("tf", "torch", "cnnlab"), required=True, help="which Keras runs the code")
parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
parser.add_argument("--unseeded", action="store_true", help="no set_random_seed: a new initialisation each run")
parser.add_argument("--seed", type=int, default=0, help="the seed set before each model (default 0)")
parser.add_argument("--verbose", type=int, default=1, help="fit's verbose (the course's default, 1)")
args = parser.parse_args()
sections = [name.strip() for name in args.sections.split(",") if name.strip()]
if not set(sections) <= set(SECTIONS):
    parser.error(f"--sections: unknown {sorted(set(sections) - set(SECTIONS))}; choose from {', '.join(SECTIONS)}")


def idx(name: str) -> np.ndarray:
    """One IDX file (MNIST's format): a magic of 0, 0, type 0x08 (uint8), the rank; big-endian sizes; the data."""
    data = gzip.decompress((MNIST / name).read_bytes())
    if data[:3] != b"\x00\x00\x08":
        raise ValueError(f"{name}: not a uint8 IDX file")
    rank = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape)


# ---- the only lines that differ between the three --------------------------------------------------------
imported = time.perf_counter()
if args.keras == "cnnlab":
    import cnnlab.keras as keras
else:
    os.environ["KERAS_BACKEND"] = BACKENDS[args.keras]
    import keras
# ---- from here on, the same code for all three -----------------------------------------------------------

Sequential = keras.models.Sequential
Conv2D, MaxPool2D, AvgPool2D = keras.layers.Conv2D, keras.layers.MaxPool2D, keras.layers.AvgPool2D
Activation, Flatten, Dense = keras.layers.Activation, keras.layers.Flatten, keras.layers.Dense
to_categorical = keras.utils.to_categorical
import_seconds = time.perf_counter() - imported

x_train_raw, y_train = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
x_test_raw, y_test = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
y_train_cat, y_test_cat = to_categorical(y_train, 10), to_categorical(y_test, 10)
results: dict = {}


def new_model() -> None:
    """What each course cell does before a model: a fresh session and, unless --unseeded, the seed."""
    keras.backend.clear_session()
    if not args.unseeded:
        keras.utils.set_random_seed(args.seed)


def train(name: str, model, x_train, x_test, epochs: int) -> None:
    """compile, fit and evaluate as the course does; records fit's seconds and the test accuracy."""
    section_started = time.perf_counter()
    model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
    fit_started = time.perf_counter()
    history = model.fit(x_train, y_train_cat, batch_size=128, epochs=epochs, verbose=args.verbose, validation_split=0.3)
    fit_seconds = time.perf_counter() - fit_started
    test_loss, test_accuracy = model.evaluate(x_test, y_test_cat, verbose=0)
    results[name] = {
        "fit_s": round(fit_seconds, 3),
        "test_accuracy": round(float(test_accuracy), 4),
        "test_loss": round(float(test_loss), 4),
        "val_accuracy": round(float(history.history["val_accuracy"][-1]), 4),
        "params": int(model.count_params()),
        "section_s": round(time.perf_counter() - section_started, 3),
    }
    print(
        f"== {name}: fit {fit_seconds:.2f} s, test accuracy {test_accuracy:.4f}, {model.count_params():,} parameters",
        flush=True,
    )


if "mlp" in sections:
    new_model()
    model = Sequential()
    model.add(Dense(512, input_dim=28 * 28, activation="relu"))
    model.add(Dense(256, activation="relu"))
    model.add(Dense(128, activation="relu"))
    model.add(Dense(32, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    x_flat = x_train_raw.reshape(-1, 28 * 28).astype("float32") / 255.0
    x_flat_test = x_test_raw.reshape(-1, 28 * 28).astype("float32") / 255.0
    train("mlp", model, x_flat, x_flat_test, epochs=10)

x_images = x_train_raw.reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_images_test = x_test_raw.reshape(-1, 28, 28, 1).astype("float32") / 255.0

if "cnn" in sections:
    new_model()
    model = Sequential()
    model.add(Conv2D(32, (3, 3), input_shape=(28, 28, 1)))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Activation("relu"))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    train("cnn", model, x_images, x_images_test, epochs=2)

if "exercise" in sections:
    new_model()
    model = Sequential()
    model.add(Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Conv2D(64, (3, 3), activation="relu"))
    model.add(MaxPool2D(pool_size=(2, 2)))
    model.add(Flatten())
    model.add(Dense(128, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    train("exercise", model, x_images, x_images_test, epochs=2)


def windows(image: np.ndarray, size: int, strides: tuple[int, int]) -> np.ndarray:
    """The (rows, cols, size, size) windows of a 2-D image, valid padding: NumPy's reference for the layers."""
    view = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return view[:: strides[0], :: strides[1]]


if "filters" in sections:
    section_started = time.perf_counter()
    rows, cols = np.mgrid[0:512, 0:512].astype("float32")
    img = 127.5 + 60 * np.sin(rows / 23.0) * np.cos(cols / 31.0) + 60 * ((rows // 64 + cols // 64) % 2 - 0.5)
    img = img.astype("float32")  # a 512×512 gray picture: smooth waves over a checkerboard, values 37.5..217.5
    img_tensor = img.reshape((1, 512, 512, 1))
    checks = {}

    new_model()
    model = Sequential()
    model.add(Conv2D(1, (3, 3), strides=(2, 1), input_shape=(512, 512, 1)))
    model.compile("adam", "mse")
    img_pred = model.predict(img_tensor, verbose=0)
    checks["conv_shape"] = list(img_pred.shape)  # the course: (1, 255, 510, 1)
    weights = model.get_weights()
    checks["kernel_shape"] = list(weights[0].shape)  # (3, 3, 1, 1)
    weights[0] = np.ones(weights[0].shape)
    model.set_weights(weights)
    img_pred = model.predict(img_tensor, verbose=0)
    expected = windows(img, 3, (2, 1)).sum(axis=(2, 3))
    checks["conv_ones_max_error"] = float(np.abs(img_pred[0, :, :, 0] - expected).max())

    new_model()
    model = Sequential()
    model.add(Conv2D(1, (3, 3), padding="same", input_shape=(512, 512, 1)))
    model.compile("adam", "mse")
    weights = model.get_weights()
    weights[0] = np.ones(weights[0].shape)
    model.set_weights(weights)
    img_pred = model.predict(img_tensor, verbose=0)
    checks["same_shape"] = list(img_pred.shape)  # (1, 512, 512, 1)
    expected = windows(np.pad(img, 1), 3, (1, 1)).sum(axis=(2, 3))
    checks["same_ones_max_error"] = float(np.abs(img_pred[0, :, :, 0] - expected).max())

    for name, layer, reduce in (("maxpool", MaxPool2D, np.max), ("avgpool", AvgPool2D, np.mean)):
        new_model()
        model = Sequential()
        model.add(layer((5, 5), input_shape=(512, 512, 1)))
        model.compile("adam", "mse")
        img_pred = model.predict(img_tensor, verbose=0)[0, :, :, 0]
        checks[f"{name}_shape"] = list(img_pred.shape)  # (102, 102)
        expected = reduce(windows(img, 5, (5, 5)), axis=(2, 3))
        checks[f"{name}_max_error"] = float(np.abs(img_pred - expected).max())

    good = (
        checks["conv_shape"] == [1, 255, 510, 1]
        and checks["kernel_shape"] == [3, 3, 1, 1]
        and checks["same_shape"] == [1, 512, 512, 1]
        and checks["maxpool_shape"] == checks["avgpool_shape"] == [102, 102]
        and max(value for key, value in checks.items() if key.endswith("_error")) < 1e-2
    )
    results["filters"] = {**checks, "ok": good, "section_s": round(time.perf_counter() - section_started, 3)}
    print(f"== filters: {'as the course' if good else 'NOT as the course'}: {checks}", flush=True)

total = time.perf_counter() - STARTED
print(f"== {args.keras} (keras {keras.__version__}): whole script {total:.2f} s (import {import_seconds:.2f} s)")
summary = {
    "keras": args.keras,
    "version": keras.__version__,
    "backend": keras.backend.backend(),
    "seeded": not args.unseeded,
    "import_s": round(import_seconds, 3),
    "total_s": round(total, 3),
    "sections": results,
}
print("RESULT " + json.dumps(summary), flush=True)

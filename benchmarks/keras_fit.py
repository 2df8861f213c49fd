"""The course's first CNN fit in Keras, as the lesson writes it: the yardstick for cnnlab's speed.

    python benchmarks/keras_fit.py          # in an environment with TensorFlow: pip install tensorflow-cpu

Conv2D(32, 3×3) → MaxPool2D(2, 2) → ReLU → Flatten → Dense(128, relu) → Dense(10, softmax); rmsprop,
categorical cross-entropy, batch 128, 2 epochs, validation_split 0.3, verbose 1 (the lesson's; verbose 0 measured
the same whole-process time, 0.99× side by side). The images come from the MNIST files
cnnlab ships (keras.datasets would download them). Prints model.fit's own seconds and the test accuracy;
time the whole process from outside to compare it with `cnnlab train` (see README.md).
"""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np

MNIST = Path(__file__).resolve().parent.parent / "src" / "cnnlab" / "data" / "mnist"


def idx(name: str) -> np.ndarray:
    data = gzip.decompress((MNIST / name).read_bytes())
    dimensions = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


import keras  # noqa: E402  (after the data helpers: TensorFlow's start-up is part of what is timed)
from keras import layers  # noqa: E402

x_train = idx("train-images-idx3-ubyte.gz").reshape(-1, 28, 28, 1).astype("float32") / 255.0
x_test = idx("t10k-images-idx3-ubyte.gz").reshape(-1, 28, 28, 1).astype("float32") / 255.0
y_train = keras.utils.to_categorical(idx("train-labels-idx1-ubyte.gz"), 10)
y_test = keras.utils.to_categorical(idx("t10k-labels-idx1-ubyte.gz"), 10)

keras.utils.set_random_seed(0)
model = keras.Sequential(
    [
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, (3, 3)),
        layers.MaxPooling2D((2, 2)),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ]
)
model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])
started = time.perf_counter()
model.fit(x_train, y_train, batch_size=128, epochs=2, validation_split=0.3, verbose=1)  # the lesson's progress bar
seconds = time.perf_counter() - started
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(
    f"keras {keras.__version__}: fit {seconds:.2f} s, test accuracy {accuracy:.4f}, {model.count_params():,} parameters"
)

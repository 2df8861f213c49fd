"""cnnlab.keras's model API: weights in Keras's layouts, inputs as Keras takes them, files, datasets, messages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cnnlab.keras import layers
from cnnlab.keras.models import Sequential, load_model
from cnnlab.keras.utils import set_random_seed, to_categorical


def small_cnn(**compile_options):
    model = Sequential(
        [
            layers.Input(shape=(8, 8, 1)),
            layers.Conv2D(4, 3, activation="relu"),
            layers.BatchNormalization(),
            layers.Flatten(),
            layers.Dense(3, activation="softmax"),
        ]
    )
    if compile_options:
        model.compile(**compile_options)
    return model


def samples(count=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((count, 8, 8, 1)).astype("float32")
    return x, (x[:, :4].mean(axis=(1, 2, 3)) * 3).astype("int64").clip(0, 2)  # a learnable class from the pixels


def test_weights_come_in_keras_layouts_and_round_trip():
    model = small_cnn()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 3, 1, 4), (4,), (4,), (4,), (4,), (4,), (144, 3), (3,)]
    conv, dense = model.layers[0], model.layers[3]
    kernel = conv.get_weights()[0]
    np.testing.assert_array_equal(kernel, conv.conv.weight.detach().numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(dense.get_weights()[0], dense.linear.weight.detach().numpy().T)
    gamma, beta, moving_mean, moving_variance = model.layers[1].get_weights()
    assert (gamma == 1).all() and (beta == 0).all() and (moving_mean == 0).all() and (moving_variance == 1).all()
    changed = [np.random.default_rng(1).random(w.shape).astype("float32") for w in model.get_weights()]
    model.set_weights(changed)
    for got, given in zip(model.get_weights(), changed):
        np.testing.assert_array_equal(got, given)


def test_set_weights_says_what_it_expected():
    model = small_cnn()
    with pytest.raises(ValueError, match="weight list of length 1, but the model was expecting 8"):
        model.set_weights([np.ones(3)])
    with pytest.raises(ValueError, match=r"must have shape \(3, 3, 1, 4\). Received: shape \(4, 1, 3, 3\)"):
        model.layers[0].set_weights([np.ones((4, 1, 3, 3)), np.zeros(4)])


def test_inputs_are_cast_never_rescaled_and_gray_images_get_their_channel():
    model = Sequential([layers.Flatten(input_shape=(8, 8, 1)), layers.Dense(2)])
    pixels = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype("uint8")
    from_uint8 = model.predict(pixels, verbose=0)
    np.testing.assert_allclose(from_uint8, model.predict(pixels.astype("float32"), verbose=0), rtol=1e-6)
    np.testing.assert_allclose(from_uint8, model.predict(pixels[..., 0], verbose=0), rtol=1e-6)  # (N, 8, 8)
    np.testing.assert_allclose(from_uint8, model.predict(pixels.tolist(), verbose=0), rtol=1e-6)
    assert abs(from_uint8).max() > 5  # 0..255 went in, not 0..1


def test_a_model_without_an_input_shape_is_built_by_its_first_data():
    model = Sequential([layers.Flatten(), layers.Dense(4, activation="relu"), layers.Dense(2, activation="sigmoid")])
    assert not model.built
    with pytest.raises(ValueError, match="has not been built yet"):
        model.summary()
    outputs = model.predict(np.zeros((5, 28, 28)), verbose=0)
    assert outputs.shape == (5, 2) and np.allclose(outputs, 0.5)  # the sigmoid, applied as Keras
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 2)


def test_reshape_keeps_keras_order():
    model = Sequential([layers.Reshape((2, 3, 2), input_shape=(12,)), layers.Reshape((12,))])
    vectors = np.arange(24, dtype="float32").reshape(2, 12)
    np.testing.assert_array_equal(model.predict(vectors, verbose=0), vectors)
    images = Sequential([layers.Reshape((2, 3, 2), input_shape=(12,))]).predict(vectors, verbose=0)
    np.testing.assert_array_equal(images, vectors.reshape(2, 2, 3, 2))
    assert model.layers[0].get_config()["target_shape"] == [2, 3, 2]
    with pytest.raises(ValueError, match="cannot be laid out"):
        Sequential([layers.Reshape((5, -1, 1), input_shape=(12,))])


def test_evaluate_returns_the_loss_alone_without_metrics():
    x, y = samples()
    model = small_cnn(optimizer="adam", loss="sparse_categorical_crossentropy")
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(loss, rel=1e-6)
    assert set(model.evaluate(x, y, verbose=0, return_dict=True)) == {"accuracy", "loss"}


def test_losses_by_name_and_object_agree():
    from cnnlab.keras import losses

    x, y = samples()
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    sparse = model.evaluate(x, y, verbose=0)
    model.compile(optimizer="rmsprop", loss=losses.CategoricalCrossentropy())
    assert model.evaluate(x, to_categorical(y, 3), verbose=0) == pytest.approx(sparse, rel=1e-5)
    outputs = model.predict(x, verbose=0)
    assert losses.categorical_crossentropy(to_categorical(y, 3), outputs).mean() == pytest.approx(sparse, rel=1e-4)


def test_fit_with_integer_labels_and_validation_data():
    set_random_seed(0)
    x, y = samples(256)
    model = small_cnn(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["acc"])
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, validation_data=(x[:64], y[:64]))
    assert list(history.history) == ["acc", "loss", "val_acc", "val_loss"]
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.optimizer.iterations == 3 * 16


def test_set_random_seed_repeats_a_fit():
    x, y = samples(128)

    def run():
        set_random_seed(3)
        model = small_cnn(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model.fit(x, y, epochs=2, verbose=0).history["loss"]

    assert run() == run()


def test_save_and_load_model_round_trip(tmp_path):
    x, _ = samples(4)
    model = small_cnn()
    model.save(tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    model.save_weights(tmp_path / "weights.safetensors")
    fresh = small_cnn()
    fresh.load_weights(tmp_path / "weights.safetensors")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_a_keras_file_round_trip_keeps_the_predictions(tmp_path):
    model, (x, _) = small_cnn(), samples(8)
    model.save(tmp_path / "model.keras")
    np.testing.assert_allclose(
        load_model(tmp_path / "model.keras").predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    with pytest.raises(ValueError, match="cnnlab writes Keras 3's .keras files, and reads legacy .h5 ones only"):
        model.save(tmp_path / "model.h5")


def test_fit_before_compile():
    x, y = samples(8)
    with pytest.raises(ValueError, match=r"You must call `compile\(\)` before using the model"):
        small_cnn().fit(x, y)


def test_fit_arguments_are_checked():
    x, y = samples(8)
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer. Received: batch_size=0"):
        model.fit(x, y, batch_size=0)
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\). Received: validation_split=1.5"):
        model.fit(x, y, validation_split=1.5)
    with pytest.raises(NotImplementedError, match=r"fit: cnnlab implements class_weight=None only"):
        model.fit(x, y, class_weight={0: 2.0})


def test_a_loss_that_does_not_fit_the_labels():
    x, y = samples(8)
    model = small_cnn(optimizer="rmsprop", loss="categorical_crossentropy")
    with pytest.raises(
        ValueError, match=r"needs targets shaped like the model's output, \(N, 3\).*Received: targets of shape \(8,\)"
    ):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"Received: labels of shape \(8, 3\)"):
        model.fit(x, to_categorical(y, 3), verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]. Received: labels from 0 to 7"):
        model.fit(x, np.arange(8), verbose=0)


def test_an_input_that_does_not_fit_the_model():
    with pytest.raises(
        ValueError,
        match=r'Input 0 of layer "sequential" is incompatible with the layer: expected '
        r"shape=\(None, 8, 8, 1\), found shape=\(2, 32, 32, 3\)",
    ):
        small_cnn().predict(np.zeros((2, 32, 32, 3)), verbose=0)


def test_layer_arguments_keras_does_not_know_or_cnnlab_does_not_implement():
    with pytest.raises(ValueError, match=r"Unrecognized keyword arguments passed to Conv2D: \{'filter': 2\}"):
        layers.Conv2D(32, 3, filter=2)
    with pytest.raises(NotImplementedError, match=r"Conv2D: cnnlab implements dilation_rate=1 only. Received: "):
        layers.Conv2D(32, 3, dilation_rate=2)
    with pytest.raises(ValueError, match=r"Received: filters=0"):
        layers.Conv2D(0, 3)
    layers.Conv2D(32, 3, data_format="channels_last", kernel_initializer="glorot_uniform")  # Keras's defaults
    assert layers.Dense(4, input_dim=10).declared_input_shape == (10,)


def test_compile_arguments_are_checked():
    model = small_cnn()
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier.*Received: optimizer='adamax'"):
        model.compile(optimizer="adamax", loss="mse")
    with pytest.raises(ValueError, match="Could not interpret loss identifier.*Received: loss='hinge'"):
        model.compile(loss="hinge")
    with pytest.raises(NotImplementedError, match="metric 'accuracy'.*Received: metrics=\\['mae'\\]"):
        model.compile(loss="mse", metrics=["mae"])


def test_optimizers_have_keras_defaults_and_a_settable_learning_rate():
    from cnnlab.keras import optimizers

    rmsprop = optimizers.RMSprop()
    assert (rmsprop.learning_rate, rmsprop.rho, rmsprop.epsilon) == (0.001, 0.9, 1e-7)
    assert optimizers.SGD().learning_rate == 0.01 and optimizers.Adam().epsilon == 1e-7
    model = small_cnn(optimizer=optimizers.Adam(learning_rate=0.01), loss="mse")
    x, y = samples(16)
    model.fit(x, to_categorical(y, 3), verbose=0)
    model.optimizer.learning_rate = 0.5
    assert model.optimizer.torch_optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(NotImplementedError, match="centered=False only"):
        optimizers.RMSprop(centered=True)


def test_layer_names_count_over_the_session_until_clear_session():
    from cnnlab.keras import backend

    assert [small_cnn().layers[0].name, small_cnn().layers[0].name] == ["conv2d", "conv2d_1"]
    backend.clear_session()
    assert small_cnn().name == "sequential"


def test_datasets_have_keras_shapes_and_dtypes():
    from cnnlab.keras.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8 and y_test.shape == (10000,)


def test_cifar10_labels_are_a_column(tmp_path, monkeypatch):
    """On a tiny CIFAR-10 archive in the cache (the tests never download): Keras's shapes and dtypes."""
    import io
    import tarfile

    from cnnlab.keras.datasets import cifar10

    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, count in [*((f"data_batch_{n}.bin", 4) for n in range(1, 6)), ("test_batch.bin", 3)]:
            records = rng.integers(0, 256, (count, 1 + 3 * 32 * 32), dtype=np.uint8)
            records[:, 0] %= 10  # the label byte, then the red, green and blue planes
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = records.size
            archive.addfile(info, io.BytesIO(records.tobytes()))
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))
    (x_train, y_train), (x_test, y_test) = cifar10.load_data()
    assert x_train.shape == (20, 32, 32, 3) and x_test.shape == (3, 32, 32, 3) and x_train.dtype == np.uint8
    assert y_train.shape == (20, 1) and y_test.shape == (3, 1) and y_train.dtype == np.uint8


def test_importing_cnnlab_keras_costs_no_torch():
    code = (
        "import sys, cnnlab.keras; from cnnlab.keras.datasets import mnist; from cnnlab.keras.utils import "
        "to_categorical; print('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_version_and_backend_as_keras_has_them():
    import cnnlab
    import cnnlab.keras

    assert cnnlab.keras.__version__ == cnnlab.__version__
    assert cnnlab.keras.backend.backend() == "cnnlab" and cnnlab.keras.backend.image_data_format() == "channels_last"


def test_progress_verbose_1_is_a_few_lines_when_not_a_terminal(capsys):
    x, y = samples(512)
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25)  # 48 steps an epoch, verbose 'auto'
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0] == "Epoch 1/2" and "\r" not in "".join(lines)
    assert lines[1].startswith("48/48 ━━━━━━━━━━━━━━━━━━━━ ") and " - val_loss: " in lines[1]


def test_progress_verbose_2_and_0(capsys):
    x, y = samples(64)
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("2/2 - ") and " - loss: " in lines[1] and len(lines) == 4
    model.fit(x, y, epochs=2, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_progress_verbose_1_redraws_one_line_on_a_terminal_or_in_jupyter(capsys, monkeypatch):
    from cnnlab.keras import callbacks

    monkeypatch.setattr(callbacks, "interactive", lambda: True)
    monkeypatch.setattr(callbacks, "REDRAW_SECONDS", 0.0)  # redraw at every step
    x, y = samples(128)
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert out.count("\n") == 2 and out.count("\r") == 17  # 'Epoch 1/1', then 16 steps redrawn and the last line
    assert out.splitlines()[-1].split("\r")[-1].startswith("16/16 ━━━━━━━━━━━━━━━━━━━━ ")


def test_progress_verbose_1_redraws_over_a_longer_line_with_spaces(capsys, monkeypatch):
    """A carriage return only moves back: a shorter line is padded, so no end of the line before it is left."""
    from terminal import screen

    from cnnlab.keras import callbacks

    monkeypatch.setattr(callbacks, "interactive", lambda: True)
    monkeypatch.setattr(callbacks, "REDRAW_SECONDS", 0.0)
    logger = callbacks.ProgbarLogger()
    logger.set_params({"verbose": 1, "epochs": 1, "steps": 3})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    logger.on_train_batch_end(0, {"accuracy": 0.5, "loss": 123456.789})
    logger.on_train_batch_end(1, {"accuracy": 0.5, "loss": 12.5})  # 5 characters shorter
    logger.on_epoch_end(0, {"loss": 0.25})  # shorter again: no accuracy
    out = capsys.readouterr().out
    frames = out.split("\n")[1].split("\r")[1:]
    assert len(frames) == 3 and all(
        len(frame) == max(len(f.rstrip()) for f in frames[: k + 1]) for k, frame in enumerate(frames)
    )
    rows = screen(out)
    assert len(rows) == 2 and rows[0] == "Epoch 1/1"
    assert rows[1] == frames[2].rstrip() and rows[1].endswith(" - loss: 0.2500")


def test_initial_epoch_continues_the_count():
    x, y = samples(32)
    model = small_cnn(optimizer="rmsprop", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=0)
    assert history.epoch == [2, 3] and len(history.history["loss"]) == 2


def test_image_outputs_train_and_score_per_pixel():
    rng = np.random.default_rng(0)
    x = rng.random((16, 4, 4, 1)).astype("float32")
    targets = np.concatenate([x, 1 - x], axis=-1)  # (N, 4, 4, 2), channels last as Keras
    model = Sequential([layers.Conv2D(2, 1, input_shape=(4, 4, 1))])
    model.compile(optimizer="adam", loss="mse")
    np.testing.assert_allclose(
        model.evaluate(x, targets, verbose=0), ((model.predict(x, verbose=0) - targets) ** 2).mean(), rtol=1e-5
    )
    history = model.fit(x, targets, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

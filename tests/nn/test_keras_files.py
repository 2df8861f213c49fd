"""Keras model files against real Keras 3 (torch backend): models Keras saved load in cnnlab with
Keras's predictions, models cnnlab saved load in Keras with cnnlab's, round trips keep every bit, and
every file that carries code or is malformed is refused with its one-line reason, before anything runs.

Skipped where Keras is not installed, unless the environment variable CI is set: there it is a failure.
"""

from __future__ import annotations

import base64
import io
import json
import marshal
import os
import pickle
import re
import sys
import zipfile

os.environ["KERAS_BACKEND"] = "torch"  # before anything imports keras

import numpy as np
import pytest
import torch

if "CI" in os.environ:
    import keras  # a CI run tests Keras files: Keras missing is an error there
else:
    keras = pytest.importorskip("keras", reason="keras is not installed (pip install keras h5py)")
import h5py

from cnnlab.data.dataset import DIGITS
from cnnlab.errors import CnnlabError
from cnnlab.nn import keras_files as kerasfiles
from cnnlab.nn.keras_files import keras_predict, load_keras, save_keras
from cnnlab.nn.modelio import load
from cnnlab.nn.registry import create_model

# Keras's torch backend converts tensors with np.array(x), which NumPy 2 warns about on every call
from cnnlab.nn.specs import model_from_spec, parse_spec_line

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
layers = keras.layers
TOLERANCE = 1e-5
SAMPLES = 4


def _randomise_batch_norms(model, rng) -> None:
    """Non-trivial gamma, beta and moving statistics, so that their mapping is tested."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, w.shape).astype("float32")
                    if name in ("gamma", "moving_variance")
                    else rng.normal(0, 0.3, w.shape).astype("float32")
                    for name, w in zip((v.name for v in layer.weights), layer.get_weights())
                ]
            )


def _keras_models(rng) -> dict:
    return {
        # the course's first CNN
        "cnn": keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                layers.Conv2D(32, (3, 3)),
                layers.MaxPooling2D((2, 2)),
                layers.Activation("relu"),
                layers.Flatten(),
                layers.Dense(128, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ],
            name="cnn",
        ),
        "batchnorm": keras.Sequential(
            [
                keras.Input((12, 12, 3)),
                layers.Conv2D(6, 3, strides=2, padding="same"),
                layers.BatchNormalization(),
                layers.Activation("relu"),
                layers.MaxPooling2D(3, strides=2, padding="same"),
                layers.AveragePooling2D(2, strides=1, padding="same"),
                layers.Conv2D(8, 3, padding="same", activation="relu", use_bias=False),
                layers.BatchNormalization(center=False, momentum=0.9, epsilon=1e-2),
                layers.Dropout(0.3),
                layers.GlobalAveragePooling2D(),
                layers.Dense(5, activation="softmax"),
            ],
            name="batchnorm",
        ),
        # vectors laid out as pictures and back, in Keras's (H, W, C) order
        "reshape": keras.Sequential(
            [
                keras.Input((48,)),
                layers.Reshape((4, 4, 3)),
                layers.Conv2D(5, 2, activation="relu"),
                layers.Reshape((-1,)),
                layers.Dense(4, activation="softmax"),
            ],
            name="reshape",
        ),
        # the course's MLP shape: (28, 28) pictures flattened at once
        "mlp": keras.Sequential(
            [
                keras.Input((28, 28)),
                layers.Flatten(),
                layers.Dense(32, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ],
            name="mlp",
        ),
        # no softmax at the end: Keras's output is the last layer's as it is
        "regressor": keras.Sequential(
            [keras.Input((6,)), layers.Dense(8, activation="tanh", name="hidden"), layers.Dense(2, name="out")],
            name="regressor",
        ),
    }


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    """name -> (Keras model, inputs, {".keras": path, ".h5": path}), each saved by Keras itself."""
    rng = np.random.default_rng(0)  # Keras's own initial weights vary run to run: the comparisons hold for any
    folder = tmp_path_factory.mktemp("keras")
    saved = {}
    for name, model in _keras_models(rng).items():
        _randomise_batch_norms(model, rng)
        inputs = rng.random((SAMPLES, *model.input_shape[1:])).astype("float32")
        files = {suffix: folder / f"{name}{suffix}" for suffix in (".keras", ".h5")}
        for path in files.values():
            model.save(path)  # Keras 3 still writes legacy .h5 (with a warning)
        saved[name] = (model, inputs, files)
    return saved


def _cnnlab_models() -> dict:
    with_batch_norm = model_from_spec(
        parse_spec_line(
            "input(12,12,3)-conv(6,3,2,same)-batchnorm(0.9,0.01)-relu-maxpool(3,2,same)-avgpool(2,1,same)"
            "-conv(8,3,same,relu,use_bias=false)-batchnorm-dropout(0.2)-gap-dense(5,softmax)"
        )
    )
    generator = torch.Generator().manual_seed(0)
    for layer in with_batch_norm.layers:
        if layer.type_name == "BatchNormalization":
            channels = layer.norm.num_features
            layer.norm.running_mean.copy_(torch.randn(channels, generator=generator) * 0.3)
            layer.norm.running_var.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.norm.weight.data.copy_(torch.rand(channels, generator=generator) + 0.5)
            layer.norm.bias.data.copy_(torch.randn(channels, generator=generator) * 0.3)
    return {
        "cnn": create_model("cnn"),
        "batchnorm": with_batch_norm.eval(),
        "sigmoid": model_from_spec(parse_spec_line("input(7)-dense(4,relu)-dense(3,sigmoid)")),
    }


@pytest.fixture(scope="module")
def cnnlab_files(tmp_path_factory):
    """name -> (cnnlab model, path of the .keras file save_keras wrote)."""
    folder = tmp_path_factory.mktemp("cnnlab")
    with torch.random.fork_rng():  # seeded here, without changing what later tests draw
        torch.manual_seed(0)
        models = _cnnlab_models()
    return {name: (model, save_keras(model, folder / f"{name}.keras")) for name, model in models.items()}


def _archive(path, config: dict | bytes, weights: bytes = b"", extra: dict | None = None, method=zipfile.ZIP_STORED):
    """A hand-made .keras archive: config.json (a dict, or raw bytes), model.weights.h5 and extra members."""
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", config if isinstance(config, bytes) else json.dumps(config))
        archive.writestr("model.weights.h5", weights)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return path


# --- Keras -> cnnlab -> Keras ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", ["cnn", "batchnorm", "reshape", "mlp", "regressor"])
def test_models_saved_by_keras_load_with_keras_predictions(keras_files, name, suffix):
    model, inputs, files = keras_files[name]
    loaded = load_keras(files[suffix])

    assert np.abs(keras_predict(loaded, inputs) - model.predict(inputs, verbose=0)).max() <= TOLERANCE
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_keras_2_h5_files_load_with_keras_predictions(keras_files, tmp_path):
    """tf.keras 2's layout, written by hand: no module keys, batch_input_shape, weights named 'dense/kernel:0'."""
    model, inputs, _ = keras_files["regressor"]
    hidden, out = (
        {
            "units": layer.units,
            "activation": layer.get_config()["activation"],
            "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        }
        for layer in model.layers
    )
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": [None, 6],
                        "dtype": "float32",
                        "sparse": False,
                        "ragged": False,
                        "name": "dense_input",
                    },
                },
                {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", **hidden}},
                {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "dtype": "float32", **out}},
            ],
        },
    }
    with h5py.File(tmp_path / "keras2.h5", "w") as h5:
        h5.attrs.update(backend="tensorflow", keras_version="2.13.1", model_config=json.dumps(config))
        weights = h5.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense", b"dense_1"]
        for name, layer in zip(("dense", "dense_1"), model.layers):
            weights.create_group(name).attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            weights[f"{name}/{name}/kernel:0"], weights[f"{name}/{name}/bias:0"] = layer.get_weights()

    loaded = load_keras(tmp_path / "keras2.h5")
    assert np.abs(keras_predict(loaded, inputs) - model.predict(inputs, verbose=0)).max() <= TOLERANCE


def test_tf_keras_2_13_archives_load_with_keras_predictions(keras_files, tmp_path):
    """tf.keras 2.13 kept the weights groups under _layer_checkpoint_dependencies/ rather than layers/."""
    model, inputs, files = keras_files["batchnorm"]
    with zipfile.ZipFile(files[".keras"]) as archive:
        config, weights = json.loads(archive.read("config.json")), io.BytesIO(archive.read("model.weights.h5"))
    with h5py.File(weights, "a") as h5:
        h5.move("layers", "_layer_checkpoint_dependencies")

    loaded = load_keras(_archive(tmp_path / "tf213.keras", config, weights.getvalue()))
    assert np.abs(keras_predict(loaded, inputs) - model.predict(inputs, verbose=0)).max() <= TOLERANCE


def test_models_saved_by_cnnlab_load_in_keras_with_cnnlab_predictions(cnnlab_files):
    for name, (model, path) in cnnlab_files.items():
        reloaded = keras.saving.load_model(path)
        inputs = np.random.default_rng(1).random((SAMPLES, *model.input_shape)).astype("float32")

        assert np.abs(reloaded.predict(inputs, verbose=0) - keras_predict(model, inputs)).max() <= TOLERANCE, name
        assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", ["cnn", "batchnorm", "reshape", "mlp", "regressor"])
def test_keras_to_cnnlab_to_keras_keeps_every_weight_bit(keras_files, tmp_path, name):
    model, _, files = keras_files[name]
    back = keras.saving.load_model(save_keras(load_keras(files[".keras"]), tmp_path / "back.keras"))

    for layer, returned_layer in zip(model.layers, back.layers, strict=True):
        original = {variable.name: variable.numpy() for variable in layer.weights}
        returned = {variable.name: variable.numpy() for variable in returned_layer.weights}
        for variable, value in original.items():
            assert value.dtype == np.float32 and np.array_equal(
                value.view(np.uint32), returned[variable].view(np.uint32)
            )
        # BatchNormalization(center=False) comes back with the beta it implied: zeros
        assert all(not returned[extra].any() for extra in returned.keys() - original.keys())


def test_cnnlab_to_keras_to_cnnlab_keeps_every_weight_bit(cnnlab_files):
    for name, (model, path) in cnnlab_files.items():
        original, returned = model.state_dict(), load_keras(path).state_dict()
        assert original.keys() == returned.keys(), name
        for key in original:
            if not key.endswith("num_batches_tracked"):  # a training counter Keras does not keep
                assert torch.equal(original[key].view(torch.int32), returned[key].view(torch.int32)), key


def test_save_keras_writes_through_a_rename_and_checks_its_arguments(cnnlab_files, tmp_path):
    model, _ = cnnlab_files["sigmoid"]
    path = save_keras(model, tmp_path / "model.keras")

    assert path == tmp_path / "model.keras" and os.listdir(tmp_path) == ["model.keras"]
    with pytest.raises(ValueError, match=re.escape("must end in .keras, as Keras 3 requires. Received: path=")):
        save_keras(model, tmp_path / "model.h5")
    with pytest.raises(ValueError, match=re.escape("must be a built cnnlab Sequential with layers. Received: model=")):
        save_keras("model", tmp_path / "other.keras")


# --- the command line -----------------------------------------------------------------------------


def test_cnnlab_import_makes_a_run_folder(keras_files, run_cli, tmp_path):
    model, inputs, files = keras_files["cnn"]
    result = run_cli("import", files[".h5"], "--name", "digits", "--runs-dir", tmp_path, "--dataset", "mnist")
    run = load(tmp_path / "digits")

    assert result.code == 0 and result.out.startswith(f"wrote {tmp_path / 'digits'}: 6 layers, ")
    assert run.class_names == DIGITS and run.dataset == "mnist"
    assert np.abs(keras_predict(run, inputs) - model.predict(inputs, verbose=0)).max() <= TOLERANCE


def test_cnnlab_import_refuses_in_one_line(keras_files, run_cli, tmp_path):
    regressor = run_cli("import", keras_files["regressor"][2][".keras"], "--runs-dir", tmp_path)
    wrong_data = run_cli("import", keras_files["cnn"][2][".keras"], "--runs-dir", tmp_path, "--dataset", "cifar10")

    assert regressor.code == 1 and "not a softmax over classes" in regressor.err
    assert wrong_data.code == 1 and "cifar10 has (32, 32, 3) images in 10 classes" in wrong_data.err
    assert [result.err.count("\n") for result in (regressor, wrong_data)] == [1, 1] and not os.listdir(tmp_path)


# --- refusals: code ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cnn_config(keras_files) -> dict:
    with zipfile.ZipFile(keras_files["cnn"][2][".keras"]) as archive:
        return json.loads(archive.read("config.json"))


def _with_layer(config: dict, layer: dict, at: int = 2) -> dict:
    changed = json.loads(json.dumps(config))
    changed["config"]["layers"].insert(at, layer)
    return changed


def _payload(marker) -> str:
    """Marshalled code that creates ``marker``, in base64, as Keras stores a Lambda's function."""
    return base64.b64encode(
        marshal.dumps(compile(f"open({str(marker)!r}, 'w').write('ran')", "payload", "exec"))
    ).decode()


def test_the_planted_payload_is_live_and_never_runs(cnn_config, tmp_path):
    proof, marker = tmp_path / "proof", tmp_path / "pwned"
    exec(marshal.loads(base64.b64decode(_payload(proof))))
    lambda_layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {"name": "lambda", "function": {"class_name": "__lambda__", "config": {"code": _payload(marker)}}},
    }
    path = _archive(tmp_path / "payload.keras", _with_layer(cnn_config, lambda_layer))
    legacy = tmp_path / "payload.h5"
    with h5py.File(legacy, "w") as h5:  # Keras 2's form: the function as a list, its type named
        keras2_lambda = {
            "class_name": "Lambda",
            "config": {"name": "lambda", "function": [_payload(marker), None, None], "function_type": "lambda"},
        }
        h5.attrs["model_config"] = json.dumps(_with_layer(cnn_config, keras2_lambda))

    for file in (path, legacy):
        with pytest.raises(
            CnnlabError,
            match=re.escape(
                "layer 2 'lambda' (Lambda): a Lambda layer's function is "
                "Python code; cnnlab never runs code from a model file"
            ),
        ):
            load_keras(file)
    assert proof.exists() and not marker.exists()


CODE_REFUSALS = {
    "custom layer": (
        {
            "module": "my_package.layers",
            "class_name": "MyLayer",
            "registered_name": "Custom>MyLayer",
            "config": {"name": "mine"},
        },
        "layer 2 'mine' (MyLayer) uses the custom object 'MyLayer' from module 'my_package.layers'",
    ),
    "custom registration": (
        {
            "module": "keras.layers",
            "class_name": "Dense",
            "registered_name": "Custom>Dense",
            "config": {"name": "d", "units": 3},
        },
        "uses the custom object 'Custom>Dense'",
    ),
    "unknown class": (
        {"module": "keras.layers", "class_name": "Conv3D", "config": {"name": "c3"}},
        "layer 2 'c3' (Conv3D): cnnlab does not know the layer class 'Conv3D'; it reads ",
    ),
    "function activation": (
        {
            "module": "keras.layers",
            "class_name": "Activation",
            "config": {
                "name": "act",
                "activation": {
                    "module": "builtins",
                    "class_name": "function",
                    "config": "mine",
                    "registered_name": "function",
                },
            },
        },
        "uses the custom object 'function' from module 'builtins'",
    ),
    "lambda activation": (
        {
            "class_name": "Activation",
            "config": {"name": "act", "activation": {"class_name": "__lambda__", "config": {"code": "eA=="}}},
        },
        "layer 2 'act' (Activation) holds a serialized Python function",
    ),
    "pickled bytes": (
        {
            "class_name": "Dropout",
            "config": {"name": "drop", "rate": 0.1, "seed": base64.b64encode(pickle.dumps({"a": 1})).decode()},
        },
        "layer 2 'drop' (Dropout) holds pickled or marshalled",
    ),
    "marshalled bytes": (
        {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.1, "noise_shape": _payload("/tmp/x")}},
        "holds pickled or marshalled bytes",
    ),
}


@pytest.mark.parametrize("case", CODE_REFUSALS)
def test_configs_that_carry_code_or_unknown_layers_are_refused(cnn_config, tmp_path, case):
    layer, fragment = CODE_REFUSALS[case]
    with pytest.raises(CnnlabError, match=re.escape(fragment)):
        load_keras(_archive(tmp_path / "model.keras", _with_layer(cnn_config, layer)))


def test_what_cnnlab_cannot_compute_the_same_way_is_refused(cnn_config, tmp_path):
    functional = {**cnn_config, "class_name": "Functional"}
    unknown_sizes = json.loads(json.dumps(cnn_config))
    unknown_sizes["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 1]
    dilated = json.loads(json.dumps(cnn_config))
    dilated["config"]["layers"][1]["config"]["dilation_rate"] = [2, 2]
    cases = {
        "the model is a Functional, not a Sequential model": functional,
        "input shape (None, None, 1) has unknown sizes": unknown_sizes,
        "(Conv2D): dilation_rate=[2, 2] is not supported by cnnlab": dilated,
    }
    for fragment, config in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(_archive(tmp_path / "model.keras", config))


def _changed(config: dict, index: int, **settings) -> dict:
    changed = json.loads(json.dumps(config))
    changed["config"]["layers"][index]["config"].update(settings)
    return changed


def test_settings_and_sizes_cnnlab_does_not_have_are_refused(keras_files, cnn_config, tmp_path, monkeypatch):
    with zipfile.ZipFile(keras_files["batchnorm"][2][".keras"]) as archive:
        batchnorm_config, batchnorm_weights = json.loads(archive.read("config.json")), archive.read("model.weights.h5")
    quantized = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "int8_from_float32"}}
    cases = {
        "(Activation): activation 'relu6' is not in cnnlab": _changed(cnn_config, 3, activation="relu6"),
        "(Dense): dtype policy 'int8_from_float32' (quantized weights) is not supported": _changed(
            cnn_config, 5, dtype=quantized
        ),
        "(BatchNormalization): renorm=True is not supported by cnnlab": _changed(batchnorm_config, 2, renorm=True),
    }
    for fragment, config in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(_archive(tmp_path / "model.keras", config))
    with pytest.raises(CnnlabError, match=re.escape("(BatchNormalization): axis=1 is not the channel axis")):
        load_keras(_archive(tmp_path / "model.keras", _changed(batchnorm_config, 2, axis=1), batchnorm_weights))
    monkeypatch.setattr(kerasfiles, "MAX_PARAMETERS", 1000)
    with pytest.raises(CnnlabError, match=re.escape("the model declares 693,962 weights, more than the 1,000")):
        load_keras(keras_files["cnn"][2][".keras"])


def test_malformed_configs_are_refused_in_one_line(cnn_config, tmp_path):
    cases = {
        "is not valid JSON": b'{"class_name": "Sequential", ',
        "nested too deeply": json.dumps(
            _with_layer(cnn_config, {"class_name": "Dropout", "config": {"name": "deep", "rate": 0.1, "seed": "DEEP"}})
        )
        .replace('"DEEP"', "[" * 10**5 + "]" * 10**5)
        .encode(),
        "each an object with a class_name and a config": _with_layer(cnn_config, {"class_name": ["Dense"]}),
        "the model config has no list of layers": {"class_name": "Sequential", "config": "layers"},
        "activation ['relu'] is not in cnnlab": _changed(cnn_config, 3, activation=["relu"]),
        "layer 4 (Dense): Dense: units must be a positive integer. Received: units='128'": _changed(
            cnn_config, 5, units="128"
        ),
    }
    for fragment, config in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(_archive(tmp_path / "model.keras", config))


# --- refusals: archives and HDF5 files ---------------------------------------------------------------


def test_archive_attacks_are_refused_before_decompressing(keras_files, cnn_config, tmp_path, monkeypatch):
    real = keras_files["regressor"][2][".keras"]
    spaces = b"{" + b" " * (4 * 2**20) + b"}"  # 4 MiB that deflate to a few KB
    cases = {
        "member '../../evil.sh' points outside the archive (path traversal)": _archive(
            tmp_path / "traversal.keras", cnn_config, extra={"../../evil.sh": "echo"}
        ),
        "member 'config.json' is compressed": _archive(tmp_path / "bomb.keras", spaces, method=zipfile.ZIP_DEFLATED),
        "member 'archive/data.pkl' holds pickled data": _archive(
            tmp_path / "pickled.keras", cnn_config, extra={"archive/data.pkl": pickle.dumps(1)}
        ),
        "unexpected member 'run.py'": _archive(tmp_path / "extra.keras", cnn_config, extra={"run.py": "print()"}),
        "not a complete .keras archive": tmp_path / "truncated.keras",
    }
    (tmp_path / "truncated.keras").write_bytes(real.read_bytes()[:-200])
    for fragment, path in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(path)
    monkeypatch.setattr(kerasfiles, "MAX_JSON_BYTES", 100)
    with pytest.raises(CnnlabError, match=re.escape("member 'config.json' would unpack to ")):
        load_keras(real)
    monkeypatch.setattr(kerasfiles, "MAX_JSON_BYTES", 2**20)
    monkeypatch.setattr(kerasfiles, "MAX_TOTAL_BYTES", 3000)
    with pytest.raises(CnnlabError, match=re.escape("the archive would unpack to more than 3,000 bytes")):
        load_keras(real)


def test_archives_keras_would_not_write_are_refused(cnn_config, tmp_path):
    with zipfile.ZipFile(tmp_path / "twice.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(cnn_config))
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("config.json", json.dumps(cnn_config))
        archive.writestr("model.weights.h5", b"")
    data = bytearray(_archive(tmp_path / "locked.keras", cnn_config).read_bytes())
    entry = data.find(b"PK\x01\x02")  # each central directory entry: its flags at byte 8
    while entry != -1:
        data[entry + 8] |= 0x1  # the "encrypted" bit, as a password-protected zip sets it
        entry = data.find(b"PK\x01\x02", entry + 1)
    (tmp_path / "locked.keras").write_bytes(bytes(data))
    with zipfile.ZipFile(tmp_path / "config-only.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(cnn_config))
    cases = {
        "twice.keras": "member 'config.json' appears twice",
        "locked.keras": "member 'metadata.json' is encrypted; save the model again without a password",
        "config-only.keras": "no model.weights.h5 in the archive; this is not a Keras 3 .keras file",
    }
    for name, fragment in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(tmp_path / name)


def test_a_damaged_member_is_refused(keras_files, tmp_path):
    data = bytearray(keras_files["cnn"][2][".keras"].read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside model.weights.h5, stored: its CRC-32 no longer matches
    (tmp_path / "damaged.keras").write_bytes(bytes(data))

    with pytest.raises(CnnlabError, match=re.escape("not a complete .keras archive (Bad CRC-32")):
        load_keras(tmp_path / "damaged.keras")


def _weights_file(fill) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        fill(h5)
    return buffer.getvalue()


def test_weights_that_are_not_plain_float_arrays_are_refused(keras_files, tmp_path):
    with zipfile.ZipFile(keras_files["regressor"][2][".keras"]) as archive:
        config = json.loads(archive.read("config.json"))

    def linked(h5):
        h5["layers/dense/vars/0"] = h5py.ExternalLink("/etc/passwd", "/")
        h5["layers/dense/vars/1"] = np.zeros(8, "float32")

    def opaque(h5):
        h5["layers/dense/vars/0"] = np.void(b"\x80\x04" + b"." * 190).repeat(1)
        h5["layers/dense/vars/1"] = np.zeros(8, "float32")

    def misshapen(h5):
        h5["layers/dense/vars/0"] = np.zeros((8, 6), "float32")
        h5["layers/dense/vars/1"] = np.zeros(8, "float32")

    cases = {
        "layer 'hidden' (Dense): weight '0' is a link to elsewhere": linked,
        "weight '0' has dtype |V192, not floats (pickled or opaque bytes are never read)": opaque,
        "weight '0' has shape (8, 6), the config needs (6, 8)": misshapen,
        "layer 'hidden' (Dense): the weights file holds no arrays": lambda h5: h5.create_group("vars"),
    }
    for fragment, fill in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(fragment)):
            load_keras(_archive(tmp_path / "model.keras", config, _weights_file(fill)))


def test_files_that_are_not_keras_models_are_refused(keras_files, tmp_path):
    model = keras_files["regressor"][0]
    model.save_weights(tmp_path / "only.weights.h5")
    with h5py.File(tmp_path / "data.h5", "w") as h5:
        h5["images"] = np.zeros((2, 2))
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0]}))
    (tmp_path / "notes.keras").write_text("not a model")
    (tmp_path / "cut.h5").write_bytes(keras_files["cnn"][2][".h5"].read_bytes()[:3000])
    (tmp_path / "hollow.keras").write_bytes(
        _archive(
            tmp_path / "x.keras", json.loads(json.dumps({"class_name": "Sequential", "config": {"layers": []}}))
        ).read_bytes()
    )
    cases = {
        "only.weights.h5": "an HDF5 file of weights only, without the model's architecture",
        "data.h5": "an HDF5 file but not a Keras model (no model_config)",
        "model.pkl": "this is a pickle; cnnlab never unpickles model files",
        "notes.keras": "neither a .keras archive nor an HDF5 model file",
        "cut.h5": "the file is not a readable HDF5 file",
        "hollow.keras": "the model has no input shape",
        "missing.keras": "cannot read the Keras model file (No such file or directory)",
    }
    for name, fragment in cases.items():
        with pytest.raises(CnnlabError, match=re.escape(f"{tmp_path / name}: {fragment}")):
            load_keras(tmp_path / name)


def test_without_h5py_the_error_says_what_to_install(keras_files, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    with pytest.raises(CnnlabError, match=re.escape("Keras model files need h5py; install it: pip install h5py")):
        load_keras(keras_files["regressor"][2][".keras"])

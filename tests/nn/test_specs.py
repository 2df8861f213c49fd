"""The registry, the two spec forms, summaries and model files."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from cnnlab import Activation, Conv2D, Dense, Flatten, Input, MaxPool2D, Sequential
from cnnlab.errors import CnnlabError
from cnnlab.nn.modelio import load, save
from cnnlab.nn.registry import create_model, list_models, parse_model
from cnnlab.nn.specs import SpecError, model_from_spec, parse_spec_line
from cnnlab.nn.summary import format_summary, summarize

KERAS_TOTALS = {"cnn": 693_962, "cnn2": 225_034, "mlp": 570_602, "cifar-cnn": 1_250_858}


@pytest.mark.parametrize("name, total", KERAS_TOTALS.items())
def test_registry_parameter_totals_match_keras(name, total):
    counted = summarize(create_model(name))
    assert (counted.total, counted.trainable, counted.non_trainable) == (total, total, 0)


def test_every_registry_model_builds_and_returns_logits():
    for name in list_models():
        model = create_model(name)
        h, w, c = model.input_shape
        assert model(torch.rand(2, c, h, w)).shape == (2, 10)


def test_course_code_and_registry_agree():
    written = Sequential(
        [
            Input((28, 28, 1)),
            Conv2D(32, (3, 3)),
            MaxPool2D((2, 2)),
            Activation("relu"),
            Flatten(),
            Dense(128, activation="relu"),
            Dense(10, activation="softmax"),
        ],
        name="cnn",
    )
    assert written.to_spec() == create_model("cnn").to_spec()


def test_cnn2_flattens_to_1600_like_the_course():
    assert [row.output_shape for row in summarize(create_model("cnn2")).rows][4] == (1600,)


def test_spec_round_trips_through_json():
    model = create_model("cifar-cnn")
    again = model_from_spec(json.loads(model.to_json()))
    assert again.to_spec() == model.to_spec()


def test_one_line_spec_reads_keywords_sizes_and_options():
    spec = parse_spec_line(
        "input(32,32,3)-conv(16,5x3,same,relu,strides=2)-avgpool(2)-gap-dropout(0.25)-dense(10,softmax)"
    )
    assert spec["input_shape"] == [32, 32, 3]
    assert spec["layers"][0] == {
        "type": "Conv2D",
        "filters": 16,
        "kernel_size": [5, 3],
        "padding": "same",
        "activation": "relu",
        "strides": 2,
    }
    assert [layer["type"] for layer in spec["layers"]] == [
        "Conv2D",
        "AvgPool2D",
        "GlobalAveragePooling2D",
        "Dropout",
        "Dense",
    ]
    assert parse_model("input(32,32,3)-conv(16,5x3,same,relu,strides=2)-avgpool(2)-gap-dense(10)").output_shape == (10,)
    assert parse_spec_line("input(8,8,1)-conv(4,3,use_bias=false)")["layers"][0]["use_bias"] is False


@pytest.mark.parametrize(
    "text, message",
    [
        ("input(28,28,1)-conv(32,3)-wobble-dense(10)", "unknown layer 'wobble'"),
        ("input(28,28,1)-conv(32,3,3,3,3)", "too many numbers"),
        ("input(4,4,1)-conv(8,5)-flatten-dense(10)", "layer 0 \\(Conv2D\\).*does not fit"),
        ("input(28,28,1)-conv(32,3)-dense(10)", "layer 1 \\(Dense\\).*add Flatten"),
        ("conv(8,3)-flatten-dense(10)", "no input shape"),
        ("input(28,28,1)-conv(8,3,bogus)-flatten-dense(10)", "Received: activation='bogus'"),
        ("nonsense", "unknown model 'nonsense'"),
    ],
)
def test_bad_specs_name_the_problem(text, message):
    with pytest.raises(SpecError, match=message):
        parse_model(text)


def test_json_spec_with_unknown_layer_type(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"input_shape": [28, 28, 1], "layers": [{"type": "Conv3D", "filters": 2}]}))
    with pytest.raises(SpecError, match="layer 0 has unknown type 'Conv3D'"):
        parse_model(str(path))
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_model(str(path))


def test_summary_text_shows_keras_rows_and_totals():
    text = format_summary(summarize(create_model("cnn")))
    assert "conv2d (Conv2D)" in text and "(None, 26, 26, 32)" in text
    assert "Total params: 693,962" in text.splitlines()
    assert "Multiply-adds per sample: 888,192" in text.splitlines()  # 26·26·32·9 + 5408·128 + 128·10


def test_batchnorm_statistics_count_as_non_trainable():
    counted = summarize(parse_model("input(8,8,3)-conv(4,3)-batchnorm-flatten-dense(2)"))
    assert counted.non_trainable == 8 and counted.total == 112 + 16 + 290  # conv 4·27+4, BN 4·4, dense 144·2+2


def test_model_files_round_trip_with_class_names(tmp_path):
    model = create_model("cnn2")
    save(model, tmp_path, class_names=list("abcdefghij"), dataset="mnist")
    again = load(tmp_path)
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(again(x), model.eval()(x))
    assert again.class_names == list("abcdefghij") and again.dataset == "mnist"


def test_pickled_weights_are_refused_without_being_run(tmp_path):
    save(create_model("cnn"), tmp_path)

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "PWNED"), "w"))

    (tmp_path / "model.safetensors").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CnnlabError, match="never unpickles"):
        load(tmp_path)
    assert not (tmp_path / "PWNED").exists()


def test_weights_that_do_not_match_the_architecture(tmp_path):
    save(create_model("cnn"), tmp_path)
    header = json.loads((tmp_path / "model.json").read_text())
    header["spec"]["layers"][0]["filters"] = 16
    (tmp_path / "model.json").write_text(json.dumps(header))
    with pytest.raises(CnnlabError, match="has shape"):
        load(tmp_path)

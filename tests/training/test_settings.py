"""Settings as the W&B lesson keeps them: files, --set, the registry models' hyper-parameters, cnnlab.config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.nn.registry import create_model
from cnnlab.nn.summary import summarize
from cnnlab.training.config import TrainConfig
from cnnlab.training.settings import Config, build_config, parse_assignments, read_settings


def test_values_are_read_as_yaml_reads_them_and_a_float_needs_no_dot():
    assert parse_assignments(["epochs=5", "lr=1e-3", "augment=shift:2", "betas=[0.8, 0.9]", "name=null"]) == {
        "epochs": 5,
        "lr": 0.001,
        "augment": "shift:2",
        "betas": [0.8, 0.9],
        "name": None,
    }
    with pytest.raises(CnnlabError, match=r"^--set expects KEY=VALUE, such as --set epochs=5. Received: 'epochs'$"):
        parse_assignments(["epochs"])


def test_later_sources_win_and_dashes_are_underscores():
    config = build_config(
        ("a.yaml", {"epochs": 3, "batch-size": 64, "dense_layer_size": 64}),
        ("--set", {"epochs": 4, "dense_layer_size": 256}),
    )
    assert (config.epochs, config.batch_size, config.model_options) == (4, 64, {"dense_layer_size": 256})
    assert build_config().model_options == {} and build_config() == TrainConfig()


def test_a_recipe_is_the_starting_point_and_the_rest_override_it():
    config = build_config(("file", {"recipe": "mnist-fast", "epochs": 3}))
    assert (config.recipe, config.optimizer, config.schedule, config.epochs) == ("mnist-fast", "adam", "onecycle", 3)


def test_model_options_build_the_model_they_name():
    model = create_model("cnn", options={"first_layer_conv_width": 5, "dense_layer_size": 64})
    conv, dense = model.layers[0], model.layers[4]
    assert tuple(conv.kernel_size) == (3, 5) and dense.units == 64  # (height, width): Keras's kernel order
    # 32·(3·5·1) + 32 ; 32 filters of a 24×13 map pooled to 12×13... counted from the shapes
    flat = 32 * ((28 - 3 + 1) // 2) * ((28 - 5 + 1) // 2)
    assert summarize(model).total == 32 * 15 + 32 + flat * 64 + 64 + 64 * 10 + 10
    deep = create_model("cnn-deep", options={"dropout": 0.25})
    assert [layer.rate for layer in deep.layers if type(layer).__name__ == "Dropout"] == [0.25, 0.25]


@pytest.mark.parametrize(
    "sources, message",
    [
        ([("--set", {"epochs": "two"})], "--set epochs: expected an integer. Received: epochs='two'"),
        ([("--set", {"lr": "fast"})], "--set lr: expected a number or null. Received: lr='fast'"),
        ([("s.yaml", {"validate_on_test": 1})], "s.yaml validate_on_test: expected true or false. Received: "),
        ([("--set", {"dense_layer_size": 0})], "--set dense_layer_size: must be a positive integer. Received: "),
        ([("--set", {"dropout": 1.5, "model": "cnn-dropout"})], "--set dropout: must be a number in [0, 1)."),
        (
            [("s.yaml", {"widht": 3})],
            "s.yaml widht: not a train setting (see cnnlab train --help) nor a hyper-parameter of cnn (cnn's are "
            "first_layer_conv_width, first_layer_conv_height, dense_layer_size)",
        ),
        ([("--set", {"model": "mlp", "dropout": 0.1})], "--set dropout: not a train setting (see cnnlab train"),
        (
            [("--set", {"model": "conv(8,3)-flatten-dense(10,softmax)", "dropout": 0.1})],
            "--set dropout: not a train setting, and ",
        ),
    ],
)
def test_bad_settings_are_one_message_naming_where_they_came_from(sources, message):
    with pytest.raises(CnnlabError) as raised:
        build_config(*sources)
    assert str(raised.value).startswith(message)


def test_settings_files_yaml_json_and_their_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("# the lesson's config\nepochs: 5\nlr: 2e-3\n")
    (tmp_path / "a.json").write_text('{"epochs": 5, "lr": 0.002}')
    assert read_settings(tmp_path / "a.yaml") == {"epochs": 5, "lr": "2e-3"}  # build_config reads the number
    assert build_config(("a", read_settings(tmp_path / "a.yaml"))) == build_config(
        ("b", read_settings(tmp_path / "a.json"))
    )
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "bad.yaml").write_text("epochs: [\n")
    (tmp_path / "python.yaml").write_text("epochs: !!python/object/apply:os.system ['echo hacked']\n")
    (tmp_path / "a.toml").write_text("epochs = 5\n")
    for name, message in [
        ("list.yaml", "expected a mapping of settings such as 'epochs: 5'"),
        ("bad.yaml", "not valid YAML (line 2)"),
        ("python.yaml", "not valid YAML (line 1)"),  # safe_load builds no Python objects
        ("a.toml", "a settings file must end in .yaml, .yml or .json"),
        ("missing.yaml", "cannot read the settings file (No such file or directory)"),
    ]:
        with pytest.raises(CnnlabError) as raised:
            read_settings(tmp_path / name)
        assert str(raised.value) == f"{tmp_path / name}: {message}"


def test_the_train_command_records_file_options_and_set_in_config_json(run_cli, tmp_path):
    (tmp_path / "lesson.yaml").write_text(
        "epochs: 3\nbatch_size: 64\ndense_layer_size: 64\nfirst_layer_conv_width: 5\n"
    )
    result = run_cli(
        "train", "--config", tmp_path / "lesson.yaml", "--epochs", "1", "--set", "dense_layer_size=32",
        "--limit", "300", "--runs-dir", tmp_path, "--name", "run", "--quiet",
    )  # fmt: skip
    assert result.code == 0, result.err
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (record["epochs"], record["batch_size"]) == (1, 64)  # the option over the file
    assert record["model_options"] == {"dense_layer_size": 32, "first_layer_conv_width": 5}  # --set over the file
    flat = 32 * 13 * 12  # 26×24 maps of the 3×5 kernel, pooled
    assert record["built"]["parameters"] == 32 * 15 + 32 + flat * 32 + 32 + 32 * 10 + 10
    assert record["date"][:4].isdigit() and "T" in record["date"]
    # resuming keeps the settings; the run's config.json is a settings file for the same run again
    assert TrainConfig.from_record(record).model_options == record["model_options"]
    again = build_config(("config.json", read_settings(tmp_path / "run" / "config.json")))
    assert again == TrainConfig.from_record(record) and again.model_options == record["model_options"]


def test_bad_settings_on_the_command_line_write_nothing(run_cli, tmp_path):
    result = run_cli("train", "--set", "dense_layer_size=many", "--runs-dir", tmp_path)
    assert (result.code, result.out) == (1, "")
    assert (
        result.err
        == "cnnlab: error: --set dense_layer_size: must be a positive integer. Received: dense_layer_size='many'\n"
    )
    assert not any(tmp_path.iterdir())


def test_config_reads_the_command_line_and_environment_and_keeps_script_defaults(tmp_path):
    (tmp_path / "sweep.yaml").write_text("epochs: 4\ndense_layer_size: 64\n")
    config = Config.from_sources(
        ["-f", "kernel.json", "--config", str(tmp_path / "sweep.yaml"), "--set=dense_layer_size=256"],
        {"CNNLAB_SET": "lr=0.01 first_layer_conv_width=5"},
    )
    config.setdefaults(epochs=2, dense_layer_size=128, img_width=28)
    assert dict(config) == {
        "epochs": 4,
        "dense_layer_size": 256,
        "lr": 0.01,
        "first_layer_conv_width": 5,
        "img_width": 28,
    }
    assert config.img_width == 28
    config.batch_size = 32
    assert config["batch_size"] == 32
    with pytest.raises(AttributeError, match="config has no setting 'optimizer'"):
        config.optimizer  # noqa: B018


def test_cnnlab_config_drives_a_keras_script(tmp_path):
    script = tmp_path / "lesson.py"
    script.write_text(
        "from cnnlab import config\n"
        "from cnnlab.keras.layers import Conv2D, Dense, Flatten, Input, MaxPooling2D\n"
        "from cnnlab.keras.models import Sequential\n"
        "config.setdefaults(first_layer_conv_width=3, first_layer_conv_height=3, dense_layer_size=128)\n"
        "model = Sequential([Input((28, 28, 1)),\n"
        "    Conv2D(32, (config.first_layer_conv_height, config.first_layer_conv_width), activation='relu'),\n"
        "    MaxPooling2D((2, 2)), Flatten(), Dense(config.dense_layer_size, activation='relu'),\n"
        "    Dense(10, activation='softmax')])\n"
        "print(model.count_params())\n"
    )
    ran = subprocess.run(
        [sys.executable, str(script), "--set", "dense_layer_size=64"], capture_output=True, text=True, check=True
    )
    assert int(ran.stdout) == summarize(create_model("cnn", options={"dense_layer_size": 64})).total
    assert cnnlab.config is cnnlab.config  # one object per process


def test_models_lists_each_registry_model_with_its_options(run_cli):
    result = run_cli("models")
    assert result.code == 0 and result.err == ""
    lines = result.out.splitlines()
    assert (
        lines[0] == "mlp          the course's fully connected baseline; mnist, 570,602 parameters, the course 97.94%"
    )
    assert lines[1:3] == [
        "cnn          the course's first CNN; mnist, 693,962 parameters, the course 97.52%",
        "             options: first_layer_conv_width=3, first_layer_conv_height=3, dense_layer_size=128",
    ]
    assert lines[-1].startswith("cifar-cnn    the course's CIFAR-10 CNN (exercise 2); cifar10, 1,250,858 parameters")

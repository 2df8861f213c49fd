"""``cnnlab evaluate RUN --report``: confusion matrix, per-class scores, most-confused pairs, worst mistakes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import cnnlab
from cnnlab.lab.report import Report, build_report, confusion_matrix, format_report, write_report
from cnnlab.training.evaluate import evaluate, predict_logits


def hand_made_report() -> Report:
    """Five images of three classes: 0 is right once and taken for 1 once, 1 is right twice, 2 is taken for 0."""
    true, predicted = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    confidence = np.array([0.9, 0.6, 0.8, 0.7, 0.95])
    return Report(
        ["zero", "one", "two"],
        confusion_matrix(true, predicted, 3),
        true,
        predicted,
        confidence,
        mistakes=np.array([4, 1]),
    )


def test_confusion_matrix_rows_are_true_classes_and_columns_predictions():
    np.testing.assert_array_equal(hand_made_report().confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="one prediction per label"):
        confusion_matrix(np.zeros(3, int), np.zeros(2, int), 2)


def test_precision_recall_and_f1_per_class():
    report = hand_made_report()
    np.testing.assert_allclose(report.precision, [1 / 2, 2 / 3, 0])  # 'two' is never predicted: 0, not NaN
    np.testing.assert_allclose(report.recall, [1 / 2, 1, 0])
    np.testing.assert_allclose(report.f1, [1 / 2, 2 * (2 / 3) / (2 / 3 + 1), 0])
    np.testing.assert_array_equal(report.support, [2, 2, 1])
    assert report.accuracy == pytest.approx(3 / 5)


def test_most_confused_pairs_come_most_frequent_first_and_skip_zeros():
    report = hand_made_report()
    report.confusion[2, 0] = 3  # 'two' taken for 'zero' three times now
    assert report.confused_pairs() == [(2, 0, 3), (0, 1, 1)]


def test_the_text_report_holds_every_part():
    text = format_report(hand_made_report())
    assert text.splitlines()[0] == "accuracy: 0.6000 (3 of 5)"
    assert "true \\ predicted" in text and "  two -> zero: 1" in text and "  zero -> one: 1" in text
    row = next(line for line in text.splitlines() if line.startswith("one ") and "1.0000" in line)
    assert row.split() == ["one", "0.6667", "1.0000", "0.8000", "2"]


@pytest.fixture(scope="module")
def real_report(trained_run):
    dataset = cnnlab.load_dataset("mnist")
    model = cnnlab.load(trained_run)
    images, labels = dataset.x_test[:2000], dataset.y_test[:2000]
    logits = predict_logits(model, torch.as_tensor(images))
    return model, images, labels, build_report(logits, labels, model.class_names)


def test_the_report_agrees_with_evaluate(real_report):
    model, images, labels, report = real_report
    assert report.accuracy == pytest.approx(evaluate(model, images, labels)["accuracy"], abs=1e-6)
    assert report.confusion.sum() == len(labels)
    np.testing.assert_array_equal(report.support, np.bincount(labels, minlength=10))


def test_the_worst_mistakes_are_wrong_and_most_confident_first(real_report):
    _, _, labels, report = real_report
    assert 0 < len(report.mistakes) <= 25
    assert (report.predicted[report.mistakes] != labels[report.mistakes]).all()
    confidences = report.confidence[report.mistakes]
    assert (np.diff(confidences) <= 0).all()
    wrong = report.predicted != labels
    assert confidences[0] == report.confidence[wrong].max()


@pytest.mark.slow
def test_write_report_writes_text_json_and_figures(real_report, tmp_path):
    _, images, _, report = real_report
    written = write_report(report, images, tmp_path / "report")
    assert [path.name for path in written] == ["report.txt", "report.json", "confusion.png", "mistakes.png"]
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    assert saved["confusion_matrix"] == report.confusion.tolist()
    assert [row["class"] for row in saved["per_class"]] == [str(digit) for digit in range(10)]
    assert len(saved["worst_mistakes"]) == len(report.mistakes)
    for figure in written[2:]:
        with Image.open(figure) as picture:
            assert picture.format == "PNG" and min(picture.size) > 300
    assert sorted(path.name for path in (tmp_path / "report").iterdir()) == sorted(path.name for path in written)


def test_no_mistakes_means_no_mistakes_figure(tmp_path):
    true = np.array([0, 1, 1])
    report = Report(["a", "b"], confusion_matrix(true, true, 2), true, true, np.ones(3), mistakes=np.array([], int))
    written = write_report(report, np.zeros((3, 8, 8, 1), np.uint8), tmp_path)
    assert [path.name for path in written] == ["report.txt", "report.json", "confusion.png"]
    assert "none: no mistakes" in (tmp_path / "report.txt").read_text()


@pytest.mark.slow
def test_evaluate_report_command(run_cli, trained_run, tmp_path):
    result = run_cli("evaluate", trained_run, "--report", "--out", tmp_path / "out")
    assert result.code == 0, result.err
    assert "confusion matrix (rows: true class, columns: predicted class)" in result.out
    assert "most confused (true -> predicted: count)" in result.out
    assert result.out.splitlines()[-1].startswith(f"wrote {tmp_path / 'out' / 'report.txt'}, ")
    assert (tmp_path / "out" / "confusion.png").is_file() and (tmp_path / "out" / "mistakes.png").is_file()


def test_out_needs_report(run_cli, trained_run, tmp_path):
    result = run_cli("evaluate", trained_run, "--out", tmp_path)
    assert result.code == 2 and "--out is the folder for --report's files; add --report" in result.err

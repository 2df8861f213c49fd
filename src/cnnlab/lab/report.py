"""Where a trained model goes wrong: the report of ``cnnlab evaluate RUN --report``.

``build_report`` runs the model over a test set once and counts; ``format_report`` writes the text;
``confusion_figure`` and ``mistakes_figure`` draw; ``write_report`` saves them all in one folder:

    report.txt      accuracy, the confusion matrix, per-class precision / recall / F1, most-confused pairs
    report.json     the same numbers, for programs
    confusion.png   the confusion matrix, coloured by the fraction of each true class
    mistakes.png    the most confident wrong predictions: true label, predicted label, probability

The confusion matrix has the true classes as rows and the predicted classes as columns. Precision
of a class is the fraction of its predictions that were right, recall the fraction of its images
found, F1 their harmonic mean; a class never predicted has precision 0 (as scikit-learn's
``zero_division=0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

WORST_MISTAKES = 25  # images in the mistakes grid: a 5×5 square
CONFUSED_PAIRS = 10
ANNOTATE_UP_TO = 20  # classes: above this the confusion figure's cells are too small for numbers


@dataclass
class Report:
    class_names: list[str]
    confusion: np.ndarray  # (K, K) int64: rows true class, columns predicted class
    labels: np.ndarray  # (N,) int64: the true classes
    predicted: np.ndarray  # (N,) int64
    confidence: np.ndarray  # (N,) float: probability of the predicted class
    mistakes: np.ndarray  # (M,) indices of the most confident wrong predictions, most confident first

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(self.confusion.sum(), 1))

    @property
    def support(self) -> np.ndarray:  # (K,) test images per true class
        return self.confusion.sum(1)

    @property
    def precision(self) -> np.ndarray:  # (K,)
        return _ratio(np.diag(self.confusion), self.confusion.sum(0))

    @property
    def recall(self) -> np.ndarray:  # (K,)
        return _ratio(np.diag(self.confusion), self.support)

    @property
    def f1(self) -> np.ndarray:  # (K,)
        precision, recall = self.precision, self.recall
        return _ratio(2 * precision * recall, precision + recall)

    def confused_pairs(self, top: int = CONFUSED_PAIRS) -> list[tuple[int, int, int]]:
        """(true class, predicted class, count) of the most frequent mistakes, most first."""
        errors = self.confusion.copy()
        np.fill_diagonal(errors, 0)
        order = np.argsort(-errors, axis=None, kind="stable")[:top]
        pairs = [
            (int(true), int(guess), int(errors[true, guess]))
            for true, guess in zip(*np.unravel_index(order, errors.shape))
        ]
        return [pair for pair in pairs if pair[2] > 0]

    def to_dict(self) -> dict:
        names = self.class_names
        return {
            "accuracy": self.accuracy,
            "class_names": names,
            "confusion_matrix": self.confusion.tolist(),
            "per_class": [
                {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                for name, p, r, f, s in zip(names, self.precision, self.recall, self.f1, self.support)
            ],
            "most_confused": [
                {"true": names[true], "predicted": names[guess], "count": count}
                for true, guess, count in self.confused_pairs()
            ],
            "worst_mistakes": [
                {
                    "index": int(i),
                    "true": names[self.labels[i]],
                    "predicted": names[self.predicted[i]],
                    "probability": float(self.confidence[i]),
                }
                for i in self.mistakes
            ],
        }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts: row = true class, column = predicted class."""
    true, predicted = np.asarray(true, np.int64), np.asarray(predicted, np.int64)
    if true.shape != predicted.shape:
        raise ValueError(
            f"confusion_matrix needs one prediction per label. Received: {true.shape} and {predicted.shape}"
        )
    return np.bincount(true * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def build_report(logits, labels, class_names: list[str], worst: int = WORST_MISTAKES) -> Report:
    """Count a model's mistakes from its ``logits`` (N, K) on test images with int ``labels`` (N,)."""
    import torch

    labels = np.asarray(labels, np.int64)
    probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()  # (N, K)
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    wrong = np.flatnonzero(predicted != labels)
    mistakes = wrong[np.argsort(-confidence[wrong], kind="stable")][:worst]
    return Report(
        list(class_names),
        confusion_matrix(labels, predicted, len(class_names)),
        labels,
        predicted,
        confidence,
        mistakes,
    )


def format_report(report: Report) -> str:
    """The report as text: accuracy, confusion matrix, per-class scores, most-confused pairs."""
    names = report.class_names
    short = all(len(name) <= 6 for name in names)  # long names (Fashion-MNIST) head their columns by index
    headers = names if short else [str(i) for i in range(len(names))]
    row_names = names if short else [f"{i} {name}" for i, name in enumerate(names)]
    cell = max(3, len(str(report.confusion.max())), *(len(h) for h in headers))
    first = max(len("true \\ predicted"), *(len(name) for name in row_names))
    lines = [
        f"accuracy: {report.accuracy:.4f} ({np.trace(report.confusion)} of {report.confusion.sum()})",
        "",
        "confusion matrix (rows: true class, columns: predicted class)",
        "true \\ predicted".ljust(first) + " " + " ".join(h.rjust(cell) for h in headers),
    ]
    lines += [
        name.ljust(first) + " " + " ".join(str(count).rjust(cell) for count in row)
        for name, row in zip(row_names, report.confusion)
    ]
    width = max(len("class"), *(len(name) for name in names))
    lines += ["", f"{'class'.ljust(width)}  precision  recall      f1  support"]
    lines += [
        f"{name.ljust(width)}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {s:7d}"
        for name, p, r, f, s in zip(names, report.precision, report.recall, report.f1, report.support)
    ]
    lines += ["", "most confused (true -> predicted: count)"]
    pairs = report.confused_pairs()
    lines += [f"  {names[true]} -> {names[guess]}: {count}" for true, guess, count in pairs] or ["  none: no mistakes"]
    return "\n".join(lines)


def confusion_figure(report: Report, out=None):
    """The confusion matrix, each row coloured by the fraction of its true class, counts written in the cells."""
    from matplotlib.figure import Figure

    from cnnlab.lab.plots import save_figure

    classes = len(report.class_names)
    fractions = report.confusion / np.maximum(report.support[:, None], 1)  # (K, K): each row sums to 1
    side = max(5.0, 0.5 * classes + 2)
    figure = Figure(figsize=(side + 1, side), dpi=100, layout="constrained")
    axes = figure.subplots()
    shown = axes.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axes, label="fraction of the true class")
    crowded = classes > 10 or max(len(name) for name in report.class_names) > 3  # long names: slant them
    axes.set_xticks(
        range(classes), report.class_names, rotation=45 if crowded else 0, ha="right" if crowded else "center"
    )
    axes.set_yticks(range(classes), report.class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"confusion matrix — accuracy {report.accuracy:.2%}")
    if classes <= ANNOTATE_UP_TO:
        for (true, guess), count in np.ndenumerate(report.confusion):
            if count:
                axes.text(
                    guess,
                    true,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if fractions[true, guess] > 0.5 else "black",
                )
    if out is not None:
        save_figure(figure, out)
    return figure


def mistakes_figure(report: Report, images, out=None):
    """The most confident wrong predictions, each titled 'true X / predicted Y' and the probability; None if none."""
    from cnnlab.lab.plots import sample_grid, save_figure

    if not len(report.mistakes):
        return None
    names = report.class_names
    titles = [
        f"true {names[report.labels[i]]}\npred {names[report.predicted[i]]} {report.confidence[i]:.2f}"
        for i in report.mistakes
    ]
    figure = sample_grid(np.asarray(images)[report.mistakes], np.arange(len(titles)), titles)
    figure.suptitle("most confident mistakes")
    if out is not None:
        save_figure(figure, out)
    return figure


def write_report(report: Report, images, folder) -> list[Path]:
    """Write report.txt, report.json, confusion.png and (when there are mistakes) mistakes.png; return their paths."""
    import json

    from cnnlab.files import write_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "report.txt", folder / "report.json", folder / "confusion.png"]
    write_atomic(written[0], format_report(report) + "\n")
    write_atomic(written[1], json.dumps(report.to_dict(), indent=2) + "\n")
    confusion_figure(report, written[2])
    if mistakes_figure(report, images, folder / "mistakes.png") is not None:
        written.append(folder / "mistakes.png")
    return written

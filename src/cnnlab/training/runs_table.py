"""Runs at a glance: one row per run folder in a folder of runs (``cnnlab runs``), and how runs' settings differ.

A sub-folder is a run when it holds a config.json, history.json or metrics.json (what ``cnnlab train``
writes); other folders are skipped. A damaged run still gets a row: what could be read, plus its problems.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.training.run import CONFIG_FILE, HISTORY_FILE, METRICS_FILE, Run

RUN_FILES = (CONFIG_FILE, HISTORY_FILE, METRICS_FILE)


@dataclass
class RunRow:
    name: str
    path: str
    model: str | None = None
    dataset: str | None = None
    epochs: int | None = None  # epochs trained (history rows); the configured epochs when there is no history
    parameters: int | None = None
    best_val_accuracy: float | None = None
    test_accuracy: float | None = None
    seconds: float | None = None  # the epochs' wall seconds, summed
    date: str | None = None  # "YYYY-MM-DD HH:MM", local time: when the run last wrote its metrics (or settings)
    problems: list[str] = field(default_factory=list)  # what could not be read, one message each

    def to_dict(self) -> dict:
        return asdict(self)


SORT_KEYS = tuple(name for name in RunRow.__dataclass_fields__ if name not in {"path", "problems"})
NUMERIC_KEYS = {"epochs", "parameters", "best_val_accuracy", "test_accuracy", "seconds"}


def read_json_file(path: Path, expected: type):
    """A JSON file holding a value of ``expected`` type; CnnlabError when it is missing, unreadable or wrong."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise CnnlabError(f"{path}: missing") from None
    except OSError as problem:
        raise CnnlabError(f"{path}: cannot be read ({problem.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CnnlabError(f"{path}: not valid JSON") from None
    if not isinstance(value, expected):
        raise CnnlabError(f"{path}: damaged (not a JSON {expected.__name__})")
    return value


def read_history(run: Run) -> list[dict]:
    """history.json: one dict per epoch; CnnlabError when missing or damaged."""
    history = read_json_file(run.path / HISTORY_FILE, list)
    if not all(isinstance(row, dict) for row in history):
        raise CnnlabError(f"{run.path / HISTORY_FILE}: damaged (a row is not a JSON object)")
    return history


def _number(value) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_row(path: str | Path) -> RunRow:
    """The row of one run folder: every file that can be read fills its columns, every other adds a problem."""
    run = Run(path)
    row = RunRow(name=run.path.name, path=str(run.path))
    written = [run.path / name for name in (METRICS_FILE, CONFIG_FILE) if (run.path / name).is_file()]
    if written:
        row.date = f"{datetime.fromtimestamp(written[0].stat().st_mtime):%Y-%m-%d %H:%M}"
    try:
        record = run.record(required=True)
        built = record.get("built") if isinstance(record.get("built"), dict) else {}
        row.model, row.dataset = record.get("model"), record.get("dataset")
        row.epochs, row.parameters = record.get("epochs"), _number(built.get("parameters"))
    except CnnlabError as problem:
        row.problems.append(str(problem))
    try:
        history = read_history(run)
        row.epochs = len(history)
        val_accuracies = [v for v in (_number(epoch.get("val_accuracy")) for epoch in history) if v is not None]
        row.best_val_accuracy = max(val_accuracies, default=None)
        row.seconds = round(sum(_number(epoch.get("seconds")) or 0 for epoch in history), 3)
    except CnnlabError as problem:
        row.problems.append(str(problem))
    try:
        row.test_accuracy = _number(read_json_file(run.path / METRICS_FILE, dict).get("test_accuracy"))
    except CnnlabError as problem:
        row.problems.append(str(problem))
    return row


def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def list_runs(folder: str | Path = "runs", sort: str = "name") -> list[RunRow]:
    """The rows of the runs in ``folder``, sorted by ``sort`` (names and dates ascending, numbers descending).

    Rows without a value for the sort key come last.
    """
    folder = Path(folder)
    if sort not in SORT_KEYS:
        raise CnnlabError(f"--sort must be one of {', '.join(SORT_KEYS)}. Received: {sort!r}")
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: not a folder; give the folder holding the run folders (--runs-dir of train)")
    rows = [read_row(path) for path in sorted(folder.iterdir()) if is_run(path)]
    known = [row for row in rows if getattr(row, sort) is not None]
    known.sort(key=lambda row: getattr(row, sort), reverse=sort in NUMERIC_KEYS)
    return known + [row for row in rows if getattr(row, sort) is None]


COLUMNS = (  # heading, RunRow field, how a value is shown
    ("name", "name", str),
    ("model", "model", str),
    ("dataset", "dataset", str),
    ("epochs", "epochs", str),
    ("parameters", "parameters", lambda value: f"{value:,}"),
    ("best val acc", "best_val_accuracy", lambda value: f"{value:.4f}"),
    ("test acc", "test_accuracy", lambda value: f"{value:.4f}"),
    ("seconds", "seconds", lambda value: f"{value:.1f}"),
    ("date", "date", str),
)
NUMBER_COLUMNS = {"epochs", "parameters", "best val acc", "test acc", "seconds"}  # right-aligned
LONGEST_MODEL = 32  # characters: a one-line spec is cut to keep the table on a screen (--json has it whole)


def _cell(row: RunRow, attribute: str, show) -> str:
    value = getattr(row, attribute)
    if value is None:
        return "-"
    text = show(value)
    return text if attribute != "model" or len(text) <= LONGEST_MODEL else text[: LONGEST_MODEL - 3] + "..."


def format_runs(rows: list[RunRow]) -> str:
    """The rows as an aligned table; each damaged run's problems follow it, one line each."""
    table = [[heading for heading, _, _ in COLUMNS]]
    table += [[_cell(row, attribute, show) for _, attribute, show in COLUMNS] for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(COLUMNS))]
    lines = []
    for line, row in zip(table, [None, *rows]):
        cells = [
            cell.rjust(width) if heading in NUMBER_COLUMNS else cell.ljust(width)
            for cell, width, (heading, _, _) in zip(line, widths, COLUMNS)
        ]
        lines.append("  ".join(cells).rstrip())
        lines += [f"  ! {problem}" for problem in (row.problems if row else [])]
    return "\n".join(lines)


# --- how runs' settings differ --------------------------------------------------------------------------

SAME_BY_NATURE = {"run", "name", "date"}  # each run's own folder, name and start: always different, never a setting


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested settings as dotted keys: {"built": {"classes": 10}} -> {"built.classes": 10}."""
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(configs: dict[str, dict]) -> dict[str, dict]:
    """The settings whose values differ between runs: key -> {run label: value}, keys in first-seen order.

    A key a run lacks counts as null (None), as a setting left unset does.
    """
    flat = {label: flatten(record) for label, record in configs.items()}
    keys = dict.fromkeys(key for record in flat.values() for key in record if key not in SAME_BY_NATURE)
    differences = {}
    for key in keys:
        values = {label: record.get(key) for label, record in flat.items()}
        if len({json.dumps(value, sort_keys=True) for value in values.values()}) > 1:
            differences[key] = values
    return differences


def format_differences(differences: dict[str, dict]) -> str:
    """One line per differing key, run by run: ``lr: a=0.001  b=null`` (values as JSON)."""
    if not differences:
        return "the runs' settings are the same"
    return "\n".join(
        f"{key}: " + "  ".join(f"{label}={json.dumps(value)}" for label, value in values.items())
        for key, values in differences.items()
    )

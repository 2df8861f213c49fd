"""The course's Keras code (``course_script.py``) under TF-Keras, Keras 3 on torch and cnnlab.keras, side by side.

    python benchmarks/course_compare.py --python-tf ~/tf-venv/bin/python --python-torch .venv/bin/python \\
        --python-cnnlab .venv/bin/python --rounds 3

Each round runs the three in turn (tf, torch, cnnlab, then again), each a whole process timed from outside,
from its start to its exit. Then a table: the whole run's seconds (median and range) per Keras, each section's
``model.fit`` seconds and test accuracies, and the ratios TF/cnnlab and torch-Keras/cnnlab, for the whole run
and for the course CNN's ``model.fit`` alone (ratios of the medians, and the range of each round's own ratio:
the runs of a round are neighbours in time, so their ratio drifts less than the seconds do). The load
(``/proc/loadavg``) before each run is written down: other programs on the machine slow every figure.

``--sections`` and ``--unseeded`` go to the script: ``--sections cnn --unseeded --rounds 5`` gives the spread
of the course CNN's test accuracy between unseeded runs. ``--json FILE`` keeps every run's figures;
``--logs DIR`` keeps each run's output. cnnlab runs with this checkout's ``src`` first on its PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "course_script.py"
SOURCE = HERE.parent / "src"
KERASES = ("tf", "torch", "cnnlab")
LABELS = {"tf": "TF-Keras", "torch": "Keras 3 on torch", "cnnlab": "cnnlab.keras"}
# the course's test accuracies (COURSE-NOTES.md: the lesson's figure, and Keras 3.15 + TF 2.21 measured here)
COURSE_ACCURACY = {"mlp": (0.9794, 0.9784), "cnn": (0.9752, 0.9763), "exercise": (0.9824, 0.9810)}
TRAINED = ("mlp", "cnn", "exercise")


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run_once(keras: str, python: str, options: list[str], logs: Path | None, tag: str) -> dict:
    env = dict(os.environ)
    if keras == "cnnlab":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE), env.get("PYTHONPATH")]))
    before = load()
    started = time.perf_counter()
    done = subprocess.run(
        [python, str(SCRIPT), "--keras", keras, *options], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if logs is not None:
        (logs / f"{tag}-{keras}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        print(f"  {keras}: FAILED (exit {done.returncode}) after {wall:.1f} s\n{tail}", flush=True)
        return {"keras": keras, "wall_s": wall, "load_before": before, "failed": done.returncode or 1}
    result = json.loads(lines[-1][len("RESULT ") :])
    return {**result, "wall_s": round(wall, 3), "load_before": before, "load_after": load()}


def spread(values: list[float], digits: int = 1, scale: float = 1.0) -> str:
    if not values:
        return "—"
    values = [value * scale for value in values]
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def table(runs: list[dict], kerases: list[str]) -> str:
    good = {keras: [run for run in runs if run["keras"] == keras and "failed" not in run] for keras in kerases}
    sections = [name for name in TRAINED if any(name in run["sections"] for run in runs if "failed" not in run)]
    rows = [("", [LABELS[keras] for keras in kerases])]
    rows.append(("version", [next((run["version"] for run in good[keras]), "—") for keras in kerases]))
    rows.append(("runs", [str(len(good[keras])) for keras in kerases]))
    rows.append(("whole run, s (outside)", [spread([run["wall_s"] for run in good[keras]]) for keras in kerases]))
    rows.append(("whole run, s (inside)", [spread([run["total_s"] for run in good[keras]]) for keras in kerases]))
    imports = [spread([run["import_s"] for run in good[keras]], 2) for keras in kerases]
    rows.append(("import keras + layers, s", imports))
    for name in sections:
        fits = [[run["sections"][name]["fit_s"] for run in good[keras] if name in run["sections"]] for keras in kerases]
        rows.append((f"{name}: model.fit, s", [spread(values) for values in fits]))
        accuracies = [
            [run["sections"][name]["test_accuracy"] for run in good[keras] if name in run["sections"]]
            for keras in kerases
        ]
        rows.append((f"{name}: test accuracy, %", [spread(values, 2, 100) for values in accuracies]))
    if any("filters" in run["sections"] for run in runs if "failed" not in run):
        verdicts = []
        for keras in kerases:
            oks = [run["sections"]["filters"]["ok"] for run in good[keras] if "filters" in run["sections"]]
            verdicts.append("—" if not oks else "as the course" if all(oks) else "WRONG")
        rows.append(("filters (shapes, values)", verdicts))
    rows.append(
        (
            "load before runs (1 min)",
            [spread([float(run["load_before"].split()[0]) for run in good[keras]]) for keras in kerases],
        )
    )
    width = max(len(label) for label, _ in rows)
    cells = [max(len(row[1][i]) for row in rows) for i in range(len(kerases))]
    lines = []
    for index, (label, values) in enumerate(rows):
        lines.append(f"{label:<{width}} | " + " | ".join(f"{value:>{cells[i]}}" for i, value in enumerate(values)))
        if index == 0:
            lines.append("-" * width + "-+-" + "-+-".join("-" * cell for cell in cells))
    return "\n".join(lines)


def ratios(runs: list[dict], rounds: int, kerases: list[str]) -> list[str]:
    """X/cnnlab for the whole run and for each section's fit: ratio of medians, and each round's own ratio."""
    if "cnnlab" not in kerases:
        return []
    by = {(run["round"], run["keras"]): run for run in runs if "failed" not in run}
    figures = [("whole run (outside)", lambda run: run["wall_s"])]
    for name in TRAINED:
        figures.append((f"{name} model.fit", lambda run, name=name: run["sections"].get(name, {}).get("fit_s")))
    lines = []
    for other in [keras for keras in kerases if keras != "cnnlab"]:
        for label, figure in figures:
            pairs = [
                (figure(by[(r, other)]), figure(by[(r, "cnnlab")]))
                for r in range(rounds)
                if (r, other) in by and (r, "cnnlab") in by
            ]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if not pairs:
                continue
            of_medians = statistics.median(a for a, _ in pairs) / statistics.median(b for _, b in pairs)
            per_round = [a / b for a, b in pairs]
            lines.append(
                f"{LABELS[other]} / cnnlab.keras, {label}: {of_medians:.2f}× "
                f"(per round {min(per_round):.2f}–{max(per_round):.2f}×)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of tf, torch, cnnlab in turn (default 3)")
    parser.add_argument("--python-tf", default=sys.executable, help="a Python with TensorFlow (Keras on TF)")
    parser.add_argument("--python-torch", default=sys.executable, help="a Python with keras and torch")
    parser.add_argument("--python-cnnlab", default=sys.executable, help="a Python with torch (cnnlab from src/)")
    parser.add_argument(
        "--keras", default=",".join(KERASES), help="which to run, in this order (default tf,torch,cnnlab)"
    )
    parser.add_argument("--sections", default=None, help="passed to course_script.py (default: all)")
    parser.add_argument("--unseeded", action="store_true", help="passed to course_script.py")
    parser.add_argument("--verbose", type=int, default=1, help="fit's verbose in the script (default 1, the course's)")
    parser.add_argument("--json", type=Path, default=None, help="write every run's figures here")
    parser.add_argument("--logs", type=Path, default=None, help="keep each run's output in this folder")
    args = parser.parse_args(argv)
    kerases = [name.strip() for name in args.keras.split(",") if name.strip()]
    if not kerases or not set(kerases) <= set(KERASES):
        parser.error(f"--keras: choose from {', '.join(KERASES)}")
    pythons = {"tf": args.python_tf, "torch": args.python_torch, "cnnlab": args.python_cnnlab}
    options = ["--verbose", str(args.verbose)]
    options += ["--sections", args.sections] if args.sections else []
    options += ["--unseeded"] if args.unseeded else []
    if args.logs is not None:
        args.logs.mkdir(parents=True, exist_ok=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {args.rounds} rounds of {', '.join(kerases)}; "
        f"{os.cpu_count()} CPUs; load {load()}",
        flush=True,
    )
    runs = []
    for round_ in range(args.rounds):
        for keras in kerases:
            run = run_once(keras, pythons[keras], options, args.logs, f"round{round_}")
            run["round"] = round_
            runs.append(run)
            if "failed" not in run:
                fits = ", ".join(
                    f"{name} fit {section['fit_s']:.1f} s {100 * section['test_accuracy']:.2f}%"
                    for name, section in run["sections"].items()
                    if "fit_s" in section
                )
                print(
                    f"round {round_ + 1} {keras:>6}: {run['wall_s']:7.1f} s whole; {fits}; "
                    f"load {run['load_before']} -> {run['load_after']}",
                    flush=True,
                )
            if args.json is not None:
                args.json.write_text(json.dumps({"options": options, "runs": runs}, indent=1))
    print()
    print(table(runs, kerases))
    print()
    for line in ratios(runs, args.rounds, kerases):
        print(line)
    print()
    for name in TRAINED:
        if any(name in run.get("sections", {}) for run in runs):
            lesson, measured = COURSE_ACCURACY[name]
            print(
                f"{name}: the lesson's test accuracy {100 * lesson:.2f}%, "
                f"Keras 3.15 + TF 2.21 measured {100 * measured:.2f}% (COURSE-NOTES)"
            )
    return 0 if all("failed" not in run for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())

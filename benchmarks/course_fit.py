"""The course's fit on cnnlab's engine, as one process: time it from outside (see README.md).

    python benchmarks/course_fit.py [--model cnn] [--epochs 2] [--limit N]

Prints the fit's own seconds and the validation accuracy; the whole process adds Python's and
torch's start-up and the data loading, which is what a learner waits for.
"""

from __future__ import annotations

import argparse

from cnnlab.bench import engine_fit, peak_rss_mb

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="cnn")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--limit", type=int)
arguments = parser.parse_args()
result = engine_fit(arguments.model, arguments.epochs, arguments.limit)
print(f"cnnlab engine: fit {result['seconds']:.2f} s for {arguments.epochs} epochs of {result['samples']:,} samples, "
      f"val_accuracy {result['val_accuracy']:.4f}, peak RSS {peak_rss_mb():.0f} MB")

"""The course's fit as one process, on cnnlab's engine or as a PyTorch tutorial writes it: time it from outside.

    python benchmarks/course_fit.py [--loop engine|textbook] [--model cnn] [--epochs 2] [--limit N]

`engine` is cnnlab's training loop. `textbook` is the yardstick: TensorDataset + shuffling DataLoader, the
model's layers in an nn.Sequential on NCHW tensors, torch.optim.RMSprop with Keras's hyper-parameters,
validation in DataLoader batches under no_grad, no thread or allocator settings (cnnlab.training.bench.textbook_fit).
Prints the fit's own seconds and the validation accuracy; the whole process adds Python's and torch's
start-up and the data loading, which is what a learner waits for (see README.md).
"""

from __future__ import annotations

import argparse

from cnnlab.training.bench import engine_fit, peak_rss_mb, textbook_fit

LOOPS = {"engine": ("cnnlab engine", engine_fit), "textbook": ("textbook loop", textbook_fit)}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--loop", choices=LOOPS, default="engine")
parser.add_argument("--model", default="cnn")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--limit", type=int)
arguments = parser.parse_args()
label, run_fit = LOOPS[arguments.loop]
result = run_fit(arguments.model, arguments.epochs, arguments.limit)
epochs = f"{arguments.epochs} epoch{'s' * (arguments.epochs != 1)}"
print(
    f"{label}: fit {result['seconds']:.2f} s for {epochs} of {result['samples']:,} samples, "
    f"val_accuracy {result['val_accuracy']:.4f}, peak RSS {peak_rss_mb():.0f} MB"
)

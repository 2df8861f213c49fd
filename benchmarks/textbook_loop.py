"""The same fit as a PyTorch tutorial writes it, as one process: the yardstick for course_fit.py.

    python benchmarks/textbook_loop.py [--model cnn] [--epochs 2] [--limit N]

TensorDataset + shuffling DataLoader, the model's layers in an nn.Sequential on NCHW tensors,
torch.optim.RMSprop with Keras's hyper-parameters (lr 0.001, rho 0.9, epsilon 1e-7), validation in
DataLoader batches under no_grad; no thread or allocator settings (see cnnlab.bench.textbook_fit).
"""

from __future__ import annotations

import argparse

from cnnlab.bench import peak_rss_mb, textbook_fit

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default="cnn")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--limit", type=int)
arguments = parser.parse_args()
result = textbook_fit(arguments.model, arguments.epochs, arguments.limit)
print(f"textbook loop: fit {result['seconds']:.2f} s for {arguments.epochs} epochs of {result['samples']:,} samples, "
      f"val_accuracy {result['val_accuracy']:.4f}, peak RSS {peak_rss_mb():.0f} MB")

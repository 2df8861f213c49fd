"""Data: datasets as uint8 arrays (``registry``: by name; ``idx``, ``cifar``, ``folders``: the readers), the one
picture reader (``images``), a person's picture made into a model's input (``digits``), and batch
augmentation (``augment``). Nothing here imports anything above ``cnnlab.data``.
"""

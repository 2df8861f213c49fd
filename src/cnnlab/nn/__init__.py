"""The model and its math: Keras-style ``layers``, ``Sequential``, model ``specs`` (architecture as data), the
``registry`` of the course's models, ``summary`` (counting), ``modelio`` (model files), ``inputs`` (uint8
images -> model input) and ``optimizers`` (the textbook updates, with Keras's defaults). Plain PyTorch: the
speed-ups live in ``cnnlab.engine``.
"""

"""The engine: everything that makes cnnlab fast on a given machine, applied to a plain model from outside.

``accelerate(model, optimizer)`` (``cnnlab.engine.accelerate``) gives the training loop a faster way to
run the same model and optimizer; ``speedups()`` says which speed-ups apply on this processor.
``cnnlab.engine.kernels`` holds the compiled CPU kernels, ``cnnlab.engine.devices`` the device,
threads and mixed precision.
"""

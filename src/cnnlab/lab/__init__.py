"""The lab: looking at convolutions and models. ``vision`` (convolution and pooling on pictures, as Keras computes
them), ``inspect`` (a trained model's learned kernels and feature maps), ``report`` (what a model gets wrong)
and ``plots`` (training curves, sample grids)."""

"""``PreciseBN``: recompute BatchNorm moving statistics on training data ("precise BN").

During training, BatchNorm normalises with each batch's statistics and keeps exponential moving
averages (momentum 0.99) for inference. On a short run those averages lag far behind the weights
(after a few hundred steps they still remember the first ones), so the saved model scores well
below what the training curves promise. Precise BN (Wu & Johnson, "Rethinking 'Batch' in
BatchNorm", 2021) replaces them with the average statistics of the current network over a pass of
training batches.

It is done with Keras' own BatchNorm update: the network runs in training mode on ``steps``
batches with each layer's ``momentum`` set to ``k / (k + 1)`` at batch ``k``, which makes the
moving statistics the exact mean of the batch statistics; the momenta are restored afterwards.
The training-mode outputs do not depend on the moving statistics, so one pass updates every layer.

As a callback it runs before each validation (``on_test_begin`` during ``fit``), so validation
accuracy, best-epoch selection and checkpoints all see the corrected statistics, and at the end of
an epoch that had no validation.
"""

from __future__ import annotations

import itertools

import keras

from featx.backbones.layers import batchnorm_layers


def recompute_batchnorm(model, dataset, steps: int) -> int:
    """Set the moving statistics of every BatchNorm layer of ``model`` to the mean batch statistics
    over the first ``steps`` batches of ``dataset`` (``(x, y)`` or ``x`` batches); returns the
    number of batches used (0 when the model has no BatchNorm layer)."""
    layers = batchnorm_layers(model)
    if not layers or steps < 1:
        return 0
    momenta = [layer.momentum for layer in layers]
    n = 0
    try:
        for batch in itertools.islice(iter(dataset), steps):  # tf.data or a PyDataset
            x = batch[0] if isinstance(batch, tuple | list) else batch
            for layer in layers:
                layer.momentum = n / (n + 1.0)
            model(x, training=True)
            n += 1
    finally:
        for layer, m in zip(layers, momenta, strict=True):
            layer.momentum = m
    return n


class PreciseBN(keras.callbacks.Callback):
    """Recompute BatchNorm statistics before every validation and at the end of epochs without one.

    Args:
        dataset: a ``tf.data.Dataset`` or ``keras.utils.PyDataset`` of training batches in inference preprocessing (no
            augmentation); only its first ``steps`` batches are used.
        steps: batches per recomputation (>= 1).
    """

    def __init__(self, dataset, steps: int):
        super().__init__()
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1. Received: steps={steps}")
        self.dataset = dataset
        self.steps = int(steps)
        self._epoch: int | None = None
        self._done_for: int | None = None
        self.batches = 0

    def _recompute(self):
        self.batches = recompute_batchnorm(self.model, self.dataset, self.steps)
        self._done_for = self._epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_test_begin(self, logs=None):
        if self._epoch is not None:  # validation inside fit(), not a separate evaluate()
            self._recompute()

    def on_epoch_end(self, epoch, logs=None):
        if self._done_for != epoch:
            self._recompute()

    def on_train_end(self, logs=None):
        self._epoch = None

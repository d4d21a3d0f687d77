"""Keras callbacks for ``featx train``, one per module.

* :class:`TrainingMonitor` -- the book's TrainingMonitor: history JSON and loss/accuracy curves
  (PNG) rewritten after every epoch, trimmed at the start epoch when a run resumes;
* :class:`EpochCheckpoint` -- the whole model (with optimizer state) every N epochs, written
  atomically;
* :class:`PreciseBN` -- BatchNorm statistics recomputed on training batches before every
  validation (precise BN);
* :func:`tensorboard_callback` -- Keras' own ``TensorBoard`` (``--tensorboard DIR``).

Killed-run resume itself uses Keras' own ``keras.callbacks.BackupAndRestore``.
"""

from featx.train.callbacks.epoch_checkpoint import EpochCheckpoint
from featx.train.callbacks.precise_bn import PreciseBN
from featx.train.callbacks.tensorboard import require_tensorboard, tensorboard_callback
from featx.train.callbacks.training_monitor import TrainingMonitor

__all__ = ["EpochCheckpoint", "PreciseBN", "TrainingMonitor", "require_tensorboard", "tensorboard_callback"]

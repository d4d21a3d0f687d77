"""``featx train``: a scratch network from an images store, resumable, with a run folder.

* :mod:`~featx.train.config`: :class:`TrainConfig`, every parameter validated once;
* :mod:`~featx.train.optim`: optimizers and learning-rate schedules (:class:`OptimConfig`);
* :mod:`~featx.train.strategy`: ``tf.distribute`` strategies (one, mirrored) and CPU devices;
* :mod:`~featx.train.callbacks`: training monitor, epoch checkpoints, precise BN;
* :mod:`~featx.train.rundir`: the run folder's files (:class:`RunDir`), read by evaluate and report;
* :mod:`~featx.train.api`: :func:`train`, which ties them together.
"""

from featx.train.api import TrainResult, apply_l2, open_images, train
from featx.train.config import (
    FREE,
    KEEP,
    LABEL_SMOOTHING,
    NOT_STATE,
    PRECISE_BN_IMAGES,
    RunFields,
    TrainConfig,
    identity_keys,
    need,
)
from featx.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    OptimConfig,
    compile_for_training,
    make_optimizer,
    make_schedule,
)
from featx.train.rundir import CONFIG_SCHEMA, RunDir, is_run_dir, save_inference_model
from featx.train.strategy import STRATEGIES, check_strategy, configure_cpu_devices, resolve_strategy

__all__ = [
    "CONFIG_SCHEMA",
    "FREE",
    "KEEP",
    "LABEL_SMOOTHING",
    "NOT_STATE",
    "OPTIMIZERS",
    "PRECISE_BN_IMAGES",
    "SCHEDULES",
    "STRATEGIES",
    "OptimConfig",
    "RunDir",
    "RunFields",
    "TrainConfig",
    "TrainResult",
    "apply_l2",
    "check_strategy",
    "compile_for_training",
    "configure_cpu_devices",
    "identity_keys",
    "is_run_dir",
    "make_optimizer",
    "make_schedule",
    "need",
    "open_images",
    "resolve_strategy",
    "save_inference_model",
    "train",
]

#: Keras callbacks and history helpers, imported on first use (they import Keras)
_CALLBACKS = ("EpochCheckpoint", "PreciseBN", "TrainingMonitor", "tensorboard_callback", "require_tensorboard",
              "load_history", "best_epoch")
__all__ += list(_CALLBACKS)


def __getattr__(name):
    if name in ("load_history", "best_epoch"):
        from featx.train.callbacks import training_monitor

        return getattr(training_monitor, name)
    if name in _CALLBACKS:
        from featx.train import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module 'featx.train' has no attribute {name!r}")

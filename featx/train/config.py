"""``TrainConfig``: the one description of a ``featx train`` run, frozen and validated on creation.

The run state written to ``RUN_DIR/config.json`` is derived from it: :meth:`TrainConfig.resolve`
fills what depends on the model and the machine (input size, mixed precision, XLA, strategy) and
resolves paths, :meth:`TrainConfig.to_dict` is its JSON, and the run adds what it learnt (data,
replicas, status). Whether a run folder can be resumed is decided by comparing the fields named by
:func:`identity_keys` (every field not marked ``resume="free"`` in its metadata) plus the data
description and the replica count, nothing else.

Errors are :class:`featx.errors.ParameterError` naming the parameter (``epochs``, not
``--epochs``); the CLI adds flag names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from featx.errors import ParameterError
from featx.preprocess.augment import DEFAULT_PRESET, Augment
from featx.train.optim import OptimConfig
from featx.train.strategy import STRATEGIES, check_strategy

KEEP = ("best", "last")
#: training images per BatchNorm recomputation unless told otherwise (0: precise BN off)
PRECISE_BN_IMAGES = 4096
#: label smoothing unless told otherwise (chosen by measurement: README, "quality")
LABEL_SMOOTHING = 0.0

#: field metadata: may differ when a run is resumed
FREE = {"resume": "free"}
#: field metadata: not written to the run state (where the run is)
NOT_STATE = {"state": False}
_FREE, _NOT_STATE = FREE, NOT_STATE


def need(ok: bool, param: str, msg: str) -> None:
    """Raise :class:`ParameterError` for ``param`` unless ``ok``."""
    if not ok:
        raise ParameterError(param, msg)


class RunFields:
    """What every training run's config shares (``featx train`` and ``featx finetune``).

    A mixin for frozen dataclasses with the fields ``batch_size``, ``checkpoint_every``,
    ``label_smoothing``, ``keep``, ``strategy``, ``cpu_devices``, ``augment`` and ``lr_scaling``:
    their checks, the learning-rate factor and the resume identity, written once.
    """

    def check_run_fields(self) -> None:
        need(self.batch_size >= 1, "batch_size", f"batch_size must be >= 1. Received: {self.batch_size}")
        need(self.checkpoint_every >= 1, "checkpoint_every",
             f"checkpoint_every must be >= 1. Received: {self.checkpoint_every}")
        need(0 <= self.label_smoothing < 1, "label_smoothing",
             f"label_smoothing must be in [0, 1). Received: {self.label_smoothing}")
        need(self.keep in KEEP, "keep", f"keep must be one of {', '.join(KEEP)}. Received: {self.keep!r}")
        need(self.strategy in STRATEGIES, "strategy",
             f"strategy must be one of {', '.join(STRATEGIES)}. Received: {self.strategy!r}")
        check_strategy(self.strategy)
        need(self.cpu_devices is None or self.cpu_devices >= 1, "cpu_devices",
             f"cpu_devices must be >= 1. Received: {self.cpu_devices}")
        need(isinstance(self.augment, Augment), "augment", f"augment must be an Augment. Received: {self.augment!r}")

    def lr_factor(self, replicas: int) -> float:
        """The learning-rate multiplier for ``replicas`` (linear scaling rule, unless switched off)."""
        return float(replicas) if self.lr_scaling else 1.0

    @classmethod
    def identity_keys(cls) -> list[str]:
        """The config fields a resumed run must share with the run it continues."""
        return [f.name for f in fields(cls) if f.metadata.get("state", True) and f.metadata.get("resume") != "free"]


@dataclass(frozen=True)
class TrainConfig(RunFields):
    """Parameters of one training run (validated on creation)."""

    model: str
    train: str
    out: str = field(metadata=_NOT_STATE)
    val: str | None = None
    input_size: int | None = None  # None: the model's canonical size
    epochs: int = 10
    batch_size: int = 64  # per replica; the global batch is batch_size x replicas
    optim: OptimConfig = field(default_factory=OptimConfig)
    lr_scaling: bool = True  # the learning rate is multiplied by the number of replicas
    l2: float | None = None  # None: the model's own default
    augment: Augment = field(default_factory=lambda: Augment.preset_named(DEFAULT_PRESET))
    label_smoothing: float = LABEL_SMOOTHING
    precise_bn_images: int = PRECISE_BN_IMAGES
    keep: str = "best"
    checkpoint_every: int = field(default=5, metadata=_FREE)
    seed: int = 42
    strategy: str = "auto"
    cpu_devices: int | None = field(default=None, metadata=_FREE)  # a testing aid: split the CPU
    mixed_precision: bool | None = None  # None: on with a GPU
    xla: bool | None = field(default=None, metadata=_FREE)  # None: on with a GPU
    mean: str | None = None  # a mean.json to use instead of the train file's means
    from_checkpoint: str | None = None
    initial_epoch: int = 0
    model_kwargs: dict = field(default_factory=dict)
    tensorboard: str | None = field(default=None, metadata=_FREE)  # a log folder for Keras' TensorBoard callback

    def __post_init__(self):
        self.check_run_fields()
        need(self.epochs >= 1, "epochs", f"epochs must be >= 1. Received: {self.epochs}")
        need(self.l2 is None or self.l2 >= 0, "l2", f"l2 must be >= 0. Received: {self.l2}")
        need(self.precise_bn_images >= 0, "precise_bn_images",
             f"precise_bn_images must be >= 0 (0: off). Received: {self.precise_bn_images}")
        need(self.input_size is None or self.input_size >= 1, "input_size",
             f"input_size must be >= 1. Received: {self.input_size}")
        need(0 <= self.initial_epoch < self.epochs, "initial_epoch",
             f"initial_epoch must be in [0, epochs). Received: {self.initial_epoch} with epochs {self.epochs}")
        need(not self.initial_epoch or self.from_checkpoint, "initial_epoch",
             "initial_epoch needs `from_checkpoint` (the weights to start epoch E from)")
        need(isinstance(self.optim, OptimConfig), "optim", f"optim must be an OptimConfig. Received: {self.optim!r}")

    # ------------------------------------------------------------------ derived
    def resolve(self, *, input_size: int, accel, strategy: str) -> TrainConfig:
        """This config with the model's input size, ``accel``'s mixed precision and XLA
        (:func:`featx.runtime.accel.resolve_accel`) and the resolved ``strategy``; paths absolute."""

        def absolute(p):
            return None if p is None else str(Path(p).resolve())

        return replace(
            self,
            train=absolute(self.train), val=absolute(self.val), mean=absolute(self.mean),
            from_checkpoint=absolute(self.from_checkpoint), tensorboard=absolute(self.tensorboard),
            input_size=int(self.input_size or input_size),
            mixed_precision=bool(accel.mixed_precision),
            xla=bool(accel.xla),
            strategy=strategy,
        )

    def to_dict(self) -> dict:
        """JSON-ready parameters (the run state's part that comes from the config)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("state", True)}
        d["optim"] = self.optim.to_dict()
        d["augment"] = self.augment.to_dict()
        d["model_kwargs"] = dict(self.model_kwargs)
        return d


def identity_keys() -> list[str]:
    """The config fields a resumed run must share with the run it continues."""
    return TrainConfig.identity_keys()

"""``FinetuneConfig``: the one description of a ``featx finetune`` run, frozen and validated on creation.

Two phases, one run folder:

1. **head**: the backbone frozen, the new Dense softmax head trained alone for ``head_epochs``
   (AdamW at ``head_lr``, cosine decay). With ``head=CLF`` (a ``featx fit`` classifier, LP-FT) the
   head starts from the classifier, scaler folded in, and this phase is skipped unless
   ``head_epochs`` asks for it;
2. **finetune**: the top ``unfreeze`` blocks of the backbone (``"all"`` or a number:
   :mod:`featx.backbones.blocks`) trained with the head for ``epochs`` (AdamW at ``lr`` after a
   linear ``warmup``, cosine decay to 0), BatchNorm layers frozen in inference mode throughout.

As with :class:`featx.train.TrainConfig`, :meth:`FinetuneConfig.resolve` fills what depends on the
data, the backbone and the machine, :meth:`FinetuneConfig.to_dict` is the JSON in ``config.json``,
and a resumed run must agree on :func:`identity_keys` (every field not marked ``resume="free"``).
Errors are :class:`featx.errors.ParameterError` naming the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from featx.constants import DEFAULT_WEIGHTS
from featx.errors import ParameterError
from featx.preprocess.augment import DEFAULT_PRESET, Augment
from featx.train import FREE, NOT_STATE, OptimConfig, RunFields, need

#: head-only epochs without ``head`` (a classifier to start from)
HEAD_EPOCHS = 2
#: phase 1's learning rate (AdamW, the new head only)
HEAD_LR = 1e-3
#: phase 2's peak learning rate (AdamW): small, as pretrained features need (README, "Fine-tuning")
FINETUNE_LR = 1e-4
#: fraction of phase 2's steps spent warming the learning rate up linearly from 0
WARMUP = 0.1
FINETUNE_EPOCHS = 5
BATCH_SIZE = 32
UNFREEZE_ALL = "all"

_FREE, _NOT_STATE = FREE, NOT_STATE


def parse_unfreeze(value) -> str | int:
    """``"all"`` or a positive block count (from ``"all"``, ``"3"``, ``3``)."""
    text = str(value).strip().lower()
    if text == UNFREEZE_ALL:
        return UNFREEZE_ALL
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ParameterError("unfreeze", f"unfreeze must be 'all' or a number of blocks >= 1. Received: {value!r}")
    return n


@dataclass(frozen=True)
class FinetuneConfig(RunFields):
    """Parameters of one fine-tuning run (validated on creation)."""

    backbone: str
    train: str
    out: str = field(metadata=_NOT_STATE)
    val: str | None = None
    weights: str = DEFAULT_WEIGHTS
    image_size: int | None = None  # the backbone's input side; None: its default (keras: its own)
    input_size: int | None = None  # the network's input side; None: the stored images' side
    head: str | None = None  # a featx fit classifier to start the head from (LP-FT)
    head_epochs: int | None = None  # None: 0 with `head`, HEAD_EPOCHS without
    head_lr: float = HEAD_LR
    epochs: int = FINETUNE_EPOCHS
    lr: float = FINETUNE_LR
    warmup: float = WARMUP
    weight_decay: float | None = None  # None: featx.train's AdamW default
    unfreeze: str | int = UNFREEZE_ALL
    dropout: float = 0.0
    batch_size: int = BATCH_SIZE  # per replica
    lr_scaling: bool = True
    label_smoothing: float = 0.0
    augment: Augment = field(default_factory=lambda: Augment.preset_named(DEFAULT_PRESET))
    keep: str = "best"
    checkpoint_every: int = field(default=5, metadata=_FREE)
    seed: int = 42
    strategy: str = "auto"
    cpu_devices: int | None = field(default=None, metadata=_FREE)
    mixed_precision: bool | None = None
    xla: bool | None = field(default=None, metadata=_FREE)
    tensorboard: str | None = field(default=None, metadata=_FREE)

    def __post_init__(self):
        object.__setattr__(self, "unfreeze", parse_unfreeze(self.unfreeze))
        self.check_run_fields()
        need(self.epochs >= 1, "epochs", f"epochs must be >= 1. Received: {self.epochs}")
        need(self.head_epochs is None or self.head_epochs >= 0, "head_epochs",
             f"head_epochs must be >= 0. Received: {self.head_epochs}")
        need(0 <= self.dropout < 1, "dropout", f"dropout must be in [0, 1). Received: {self.dropout}")
        for name in ("image_size", "input_size"):
            v = getattr(self, name)
            need(v is None or v >= 1, name, f"{name} must be >= 1. Received: {v}")
        self.head_optim()  # validates head_lr
        self.finetune_optim()  # validates lr, warmup, weight_decay

    # ------------------------------------------------------------------ derived
    @property
    def head_phase_epochs(self) -> int:
        """Epochs of phase 1: ``head_epochs``, or 0 with a classifier head and HEAD_EPOCHS without."""
        if self.head_epochs is not None:
            return int(self.head_epochs)
        return 0 if self.head else HEAD_EPOCHS

    @property
    def total_epochs(self) -> int:
        return self.head_phase_epochs + self.epochs

    def head_optim(self) -> OptimConfig:
        """Phase 1: AdamW at ``head_lr``, cosine decay, no warmup (the head starts from zero gradient history)."""
        return OptimConfig(optimizer="adamw", lr=self.head_lr, schedule="cosine", weight_decay=self.weight_decay)

    def finetune_optim(self) -> OptimConfig:
        """Phase 2: AdamW at ``lr`` after a linear ``warmup`` from 0, cosine decay to 0."""
        return OptimConfig(optimizer="adamw", lr=self.lr, schedule="cosine", warmup=self.warmup,
                           weight_decay=self.weight_decay)

    def resolve(self, *, image_size: int, input_size: int, accel, strategy: str) -> FinetuneConfig:
        """This config with the backbone's and the network's input sides, ``accel``'s mixed
        precision and XLA, the resolved strategy and phase-1 epochs; paths absolute."""

        def absolute(p):
            return None if p is None else str(Path(p).resolve())

        return replace(
            self, train=absolute(self.train), val=absolute(self.val), head=absolute(self.head),
            tensorboard=absolute(self.tensorboard), image_size=int(image_size), input_size=int(input_size),
            head_epochs=self.head_phase_epochs, mixed_precision=bool(accel.mixed_precision), xla=bool(accel.xla),
            strategy=strategy,
        )

    def to_dict(self) -> dict:
        """JSON-ready parameters (the run state's part that comes from the config)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("state", True)}
        d["augment"] = self.augment.to_dict()
        return d

    def phases(self, replicas: int = 1) -> list[dict]:
        """The two phases as ``config.json`` records them (epochs are 1-based and inclusive)."""
        e1 = self.head_phase_epochs
        factor = self.lr_factor(replicas)
        return [
            {"phase": "head", "epochs": e1, "first_epoch": 1 if e1 else None, "last_epoch": e1 or None,
             "trains": "the head only (backbone frozen)",
             "head_from": "classifier" if self.head else "random init",
             "optim": self.head_optim().scaled(factor).to_dict()},
            {"phase": "finetune", "epochs": self.epochs, "first_epoch": e1 + 1, "last_epoch": e1 + self.epochs,
             "trains": f"the head and the top {self.unfreeze} backbone blocks" if self.unfreeze != UNFREEZE_ALL
             else "the head and the whole backbone",
             "batchnorm": "frozen, inference mode (moving statistics unchanged)",
             "optim": self.finetune_optim().scaled(factor).to_dict()},
        ]


def identity_keys() -> list[str]:
    """The config fields a resumed run must share with the run it continues."""
    return FinetuneConfig.identity_keys()

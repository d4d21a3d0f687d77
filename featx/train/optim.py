"""Optimizers and learning-rate schedules for ``featx train``, from Keras' own classes.

Schedules count optimizer steps from the epoch a training segment starts at (``start_epoch``: 0,
or E for ``--from-checkpoint ... --initial-epoch E``), with ``ceil(N / batch)`` steps per epoch:

* ``poly``: ``PolynomialDecay`` from ``lr`` to 0 at the last epoch; ``power=1`` is the book's
  linear decay;
* ``step``: ``PiecewiseConstantDecay``, ``lr`` multiplied by ``factor`` at each epoch in ``drops``;
* ``cosine``: ``CosineDecay`` from ``lr`` to 0 at the last epoch, after a linear warmup from 0
  over the first ``warmup`` fraction of the steps (Keras' ``warmup_target`` / ``warmup_steps``);
  ``featx finetune``'s schedule;
* ``constant``: ``lr`` throughout.

A resumed run (``--resume``) restores ``optimizer.iterations`` with the rest of its state, so the
schedule continues where it stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from featx.errors import ParameterError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("poly", "step", "cosine", "constant")
#: AdamW's decoupled weight decay unless told otherwise (Keras' own default)
ADAMW_WEIGHT_DECAY = 0.004


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer + schedule settings (validated on creation)."""

    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "poly"
    power: float = 1.0
    drops: tuple[int, ...] = field(default_factory=tuple)
    factor: float = 0.1
    weight_decay: float | None = None  # adamw only; None: ADAMW_WEIGHT_DECAY
    warmup: float = 0.0  # cosine only: fraction of the steps spent warming up linearly from 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(
                "optimizer", f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ParameterError(
                "schedule", f"schedule must be one of {', '.join(SCHEDULES)}. Received: {self.schedule!r}")
        if not self.lr > 0:
            raise ParameterError("lr", f"lr must be > 0. Received: {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ParameterError("momentum", f"momentum must be in [0, 1). Received: {self.momentum}")
        if self.power <= 0:
            raise ParameterError("power", f"power must be > 0. Received: {self.power}")
        if not 0 < self.factor <= 1:
            raise ParameterError("factor", f"drop factor must be in (0, 1]. Received: {self.factor}")
        drops = tuple(int(d) for d in self.drops)
        if any(d < 1 for d in drops) or list(drops) != sorted(set(drops)):
            raise ParameterError("drops", f"drop epochs must be increasing positive integers. Received: {self.drops}")
        if self.schedule == "step" and not drops:
            raise ParameterError("drops", "schedule 'step' needs drop epochs (e.g. 20,40)")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ParameterError("weight_decay", f"weight_decay must be >= 0. Received: {self.weight_decay}")
        if self.weight_decay is not None and self.optimizer != "adamw":
            raise ParameterError("weight_decay", "weight_decay applies to optimizer 'adamw' only (use l2 otherwise)")
        if not 0 <= self.warmup < 1:
            raise ParameterError("warmup", f"warmup is a fraction of the steps, in [0, 1). Received: {self.warmup}")
        if self.warmup and self.schedule != "cosine":
            raise ParameterError("warmup", "warmup applies to schedule 'cosine' only")
        object.__setattr__(self, "drops", drops)

    def scaled(self, factor: float) -> OptimConfig:
        """The same settings with the learning rate multiplied by ``factor`` (linear scaling rule)."""
        return replace(self, lr=self.lr * factor)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["drops"] = list(self.drops)
        return d


def make_schedule(cfg: OptimConfig, *, steps_per_epoch: int, epochs: int, start_epoch: int = 0):
    """The learning rate: a float (constant) or a ``keras.optimizers.schedules`` object."""
    import keras

    if cfg.schedule == "constant":
        return float(cfg.lr)
    if cfg.schedule == "poly":
        total = max(1, (epochs - start_epoch) * steps_per_epoch)
        return keras.optimizers.schedules.PolynomialDecay(
            initial_learning_rate=cfg.lr, decay_steps=total, end_learning_rate=0.0, power=cfg.power
        )
    if cfg.schedule == "cosine":
        total = max(1, (epochs - start_epoch) * steps_per_epoch)
        warm = int(round(cfg.warmup * total))
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warm else cfg.lr, decay_steps=max(1, total - warm), alpha=0.0,
            warmup_target=cfg.lr if warm else None, warmup_steps=warm,
        )
    drops = [d for d in cfg.drops if d > start_epoch]
    if not drops:
        return float(cfg.lr)
    boundaries = [(d - start_epoch) * steps_per_epoch for d in drops]
    values = [float(cfg.lr * cfg.factor**i) for i in range(len(drops) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def make_optimizer(cfg: OptimConfig, *, steps_per_epoch: int, epochs: int, start_epoch: int = 0):
    """A Keras SGD (momentum), Adam or AdamW optimizer driven by :func:`make_schedule`."""
    import keras

    lr = make_schedule(cfg, steps_per_epoch=steps_per_epoch, epochs=epochs, start_epoch=start_epoch)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if cfg.optimizer == "adamw":
        wd = ADAMW_WEIGHT_DECAY if cfg.weight_decay is None else cfg.weight_decay
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=wd)
    return keras.optimizers.Adam(learning_rate=lr)


def carry_slots(old, new, trainable_variables) -> int:
    """Copy ``old``'s per-weight slots (momentum, Adam moments) into ``new``, matched by name and
    shape; the step counter and learning rate are not copied. Returns the number copied.

    This is the book's "restart at epoch E with a new learning rate": weights and momentum are
    kept, the rate (and its schedule) are new.
    """
    if old is None or not getattr(old, "built", False):
        return 0
    if not new.built:
        new.build(trainable_variables)
    skip = {"iteration", "iterations", "learning_rate"}
    by_name = {v.name: v for v in old.variables if v.name not in skip}
    copied = 0
    for v in new.variables:
        src = by_name.get(v.name)
        if src is not None and tuple(src.shape) == tuple(v.shape):
            v.assign(src)
            copied += 1
    return copied


def compile_for_training(model, optimizer, *, label_smoothing: float = 0.0, jit_compile="auto") -> None:
    """``model.compile`` with featx's loss (categorical cross-entropy) and metric (``accuracy``),
    then the optimizer's slots built at once.

    Keras' TensorFlow trainer without a distribution strategy builds the optimizer and a metric
    named by a string inside the first trace of the train step; a ``tf.function`` that creates
    variables while it is first traced is traced a second time, so every run's first step paid two
    traces of the whole forward and backward pass (MiniGoogLeNet at 32 px: about 5 s of a 2-core CPU).
    Built here, the step is traced once. Call it inside the strategy's scope.
    """
    import keras

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        # the metric object (its variables made now); what the string "accuracy" resolves to for
        # one-hot labels, under the same name in the history (accuracy, val_accuracy)
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

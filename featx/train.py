"""``featx train``: fit a scratch model (``scratch_models``) on an HDF5 images store.

Data flow: train.h5 -> :func:`featx.preprocess.pipeline.train_dataset` (block-shuffled every
epoch, every row, random patch crops, augmentation layers, prefetch) -> model whose first layer
subtracts the build's means -> ``model.fit`` with Keras callbacks:

* ``keras.callbacks.BackupAndRestore`` (``RUN_DIR/backup``): a killed run continues with
  ``--resume`` at the right epoch with its weights and optimizer state (step counter included,
  so the learning-rate schedule continues too);
* :class:`featx.callbacks.TrainingMonitor`: ``history.json`` + ``curves.png`` every epoch;
* :class:`featx.callbacks.EpochCheckpoint`: ``checkpoints/epoch_NNN.keras`` every N epochs.

The book's "stop, then restart from a checkpoint at epoch E with a new learning rate" is
``from_checkpoint=CKPT, initial_epoch=E, optim=OptimConfig(lr=NEW, ...)``: weights and momentum
come from the checkpoint, the schedule is new and runs from epoch E to ``epochs``.

Mixed precision and XLA are switched on when TensorFlow sees a GPU (both can be forced either way).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featx import __version__
from featx.errors import FeatxError, OutputExistsError
from featx.optim import OptimConfig
from featx.outputs import (
    check_not_input,
    check_overwritable,
    check_writable,
    output_lock,
    write_error,
)
from featx.preprocess.augment import Augment
from featx.rundir import CONFIG_SCHEMA, RunDir
from featx.utils import atomic_write_json

#: Keys of the run config that may differ when a run is resumed.
_RESUME_FREE = {"xla", "status", "params", "train_seconds", "finished", "segments", "created", "featx_version",
                "device", "files", "warnings", "epochs_done", "train_images_per_second", "schema"}
#: Keys that must match when a new segment restarts from a checkpoint in the same run folder.
_SEGMENT_FIXED = ("model", "input_size", "classes", "label_names", "train", "mixed_precision")


@dataclass
class TrainConfig:
    """Parameters of one training run (validated by :meth:`check`)."""

    model: str
    train: str
    out: str
    val: str | None = None
    input_size: int | None = None  # None: the model's canonical size
    epochs: int = 10
    batch_size: int = 64
    optim: OptimConfig = field(default_factory=OptimConfig)
    l2: float | None = None  # None: the model's own default
    augment: Augment = field(default_factory=Augment)
    checkpoint_every: int = 5
    seed: int = 42
    mixed_precision: bool | None = None  # None: on with a GPU
    xla: bool | None = None  # None: on with a GPU
    mean: str | None = None  # a mean.json to use instead of the train file's means
    from_checkpoint: str | None = None
    initial_epoch: int = 0
    model_kwargs: dict = field(default_factory=dict)

    def check(self) -> None:
        if self.epochs < 1:
            raise FeatxError(f"--epochs must be >= 1. Received: {self.epochs}")
        if self.batch_size < 1:
            raise FeatxError(f"--batch-size must be >= 1. Received: {self.batch_size}")
        if self.checkpoint_every < 1:
            raise FeatxError(f"--checkpoint-every must be >= 1. Received: {self.checkpoint_every}")
        if self.l2 is not None and self.l2 < 0:
            raise FeatxError(f"--l2 must be >= 0. Received: {self.l2}")
        if self.initial_epoch < 0 or self.initial_epoch >= self.epochs:
            raise FeatxError(
                f"--initial-epoch must be in [0, --epochs). Received: {self.initial_epoch} with --epochs {self.epochs}"
            )
        if self.initial_epoch and not self.from_checkpoint:
            raise FeatxError("--initial-epoch needs --from-checkpoint (the weights to start epoch E from)")
        if self.from_checkpoint and not Path(self.from_checkpoint).is_file():
            raise FeatxError(f"--from-checkpoint {self.from_checkpoint} does not exist")


@dataclass
class TrainResult:
    run_dir: Path
    model_path: Path
    history_path: Path
    curves_path: Path
    config_path: Path
    initial_epoch: int
    epochs: int
    train_seconds: float
    params: int
    last: dict = field(default_factory=dict)
    reused: bool = False
    resumed_from: int | None = None
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"


# ---------------------------------------------------------------------------------------- helpers
def _model_info(name: str):
    import scratch_models

    try:
        return scratch_models.get_model_info(name)
    except ValueError as e:
        raise FeatxError(str(e)) from None


def _open_images(path: str, role: str):
    from featx.store import open_store

    r = open_store(path, kind="images")
    if len(r) == 0:
        r.close()
        raise FeatxError(f"{role} file {path} has no rows")
    if len(r.row_shape) != 3 or r.row_shape[2] != 3:
        r.close()
        raise FeatxError(f"{role} file {path} holds images of shape {r.row_shape}; expected (H, W, 3) RGB")
    return r


def apply_l2(model, l2: float) -> int:
    """Set an L2 penalty of ``l2`` (0: none) on every conv/dense kernel; returns how many."""
    import keras

    reg = keras.regularizers.L2(l2) if l2 else None
    n = 0
    for layer in model.layers:
        if hasattr(layer, "kernel_regularizer") and getattr(layer, "kernel", None) is not None:
            layer.kernel_regularizer = reg
            layer.kernel.regularizer = reg
            n += 1
    return n


def _warn(warnings: list, on_warning, msg: str) -> None:
    warnings.append(msg)
    if on_warning is not None:
        on_warning(msg)


def _gpu_available() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _resolved(cfg: TrainConfig, info, classes, label_names, mean_rgb, image_size, rows, gpu) -> dict:
    d = asdict(cfg)
    d.pop("out")
    d["optim"] = cfg.optim.to_dict()
    d["augment"] = cfg.augment.to_dict()
    d["train"] = str(Path(cfg.train).resolve())
    d["val"] = None if cfg.val is None else str(Path(cfg.val).resolve())
    d["from_checkpoint"] = None if cfg.from_checkpoint is None else str(Path(cfg.from_checkpoint).resolve())
    d["mean"] = None if cfg.mean is None else str(Path(cfg.mean).resolve())
    d["input_size"] = int(cfg.input_size or info.input_size)
    d["mixed_precision"] = bool(gpu if cfg.mixed_precision is None else cfg.mixed_precision)
    d["xla"] = bool(gpu if cfg.xla is None else cfg.xla)
    return {
        "schema": CONFIG_SCHEMA,
        "featx_version": __version__,
        **d,
        "classes": classes,
        "label_names": list(label_names),
        "mean_rgb": [float(m) for m in mean_rgb],
        "image_size": list(image_size),
        "train_rows": rows["train"],
        "val_rows": rows["val"],
        "feature_layer": info.feature_layer,
    }


def _diff(old: dict, new: dict, skip=_RESUME_FREE) -> list[str]:
    keys = (set(old) | set(new)) - set(skip)
    return sorted(k for k in keys if old.get(k) != new.get(k))


def _clean(run: RunDir) -> None:
    for p in (run.config, run.mean, run.history, run.curves, run.model, run.eval):
        p.unlink(missing_ok=True)
    for d in (run.backup, run.checkpoints):
        shutil.rmtree(d, ignore_errors=True)


def _plan(run: RunDir, new: dict, *, resume: bool, overwrite: bool) -> tuple[str, dict | None]:
    """What to do with the run folder: ("new" | "resume" | "segment" | "complete", old config)."""
    if not run.config.exists():
        if resume and not run.backup.exists():
            raise FeatxError(f"--resume: {run.root} holds no run to resume (no config.json)")
        _clean(run)
        return "new", None
    old = run.read_config()
    if overwrite:
        _clean(run)
        return "new", None
    diff = _diff(old, new)
    if not diff:
        if old.get("status") == "finished" and run.model.exists():
            return "complete", old
        if not resume:
            at = run.backup_epoch()
            where = f" (last backup after epoch {at})" if at is not None else ""
            raise OutputExistsError(
                f"{run.root} holds an unfinished run{where}: pass --resume to continue it, or --overwrite to start over"
            )
        return "resume", old
    if new.get("from_checkpoint") and not resume:
        fixed = [k for k in _SEGMENT_FIXED if old.get(k) != new.get(k)]
        if fixed:
            raise OutputExistsError(
                f"{run.root} holds a run with another {', '.join(fixed)}; restart from a checkpoint into the "
                "same folder only with the same model, data and input size (or use another -o)"
            )
        shutil.rmtree(run.backup, ignore_errors=True)  # the old segment's state is replaced
        run.model.unlink(missing_ok=True)
        return "segment", old
    raise OutputExistsError(
        f"{run.root} holds a run made with other parameters (differs in: {', '.join(diff)}); "
        "use another -o, --overwrite to start over, or --from-checkpoint to continue with new settings"
    )


def _result(run: RunDir, conf: dict, *, reused: bool, resumed_from=None, warnings=()) -> TrainResult:
    from featx.callbacks.training_monitor import load_history

    hist = load_history(run.history)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v and k not in ("epoch",)}
    return TrainResult(
        run_dir=run.root, model_path=run.model, history_path=run.history, curves_path=run.curves,
        config_path=run.config, initial_epoch=int(conf.get("initial_epoch", 0)),
        epochs=len(hist.get("epoch", [])), train_seconds=float(conf.get("train_seconds") or 0.0),
        params=int(conf.get("params") or 0), last=last, reused=reused, resumed_from=resumed_from,
        warnings=list(warnings), device=conf.get("device", "cpu"),
    )


def _build_model(cfg: TrainConfig, conf: dict):
    """A fresh model (mean subtraction first), or the checkpoint's model for a new segment."""

    import scratch_models
    from featx.preprocess.mean import with_mean_subtraction

    size = conf["input_size"]
    if cfg.from_checkpoint:
        from featx.keras_files import load_keras_model

        model = load_keras_model(cfg.from_checkpoint, compile=True)
        want_in, want_out = (None, size, size, 3), (None, conf["classes"])
        if tuple(model.input_shape) != want_in or tuple(model.output_shape) != want_out:
            raise FeatxError(
                f"checkpoint {cfg.from_checkpoint} takes {model.input_shape} -> {model.output_shape}; "
                f"this run needs {want_in} -> {want_out}"
            )
        if cfg.l2 is not None:
            apply_l2(model, cfg.l2)
        return model
    try:
        base = scratch_models.create_model(
            cfg.model, input_shape=(size, size, 3), classes=conf["classes"], **cfg.model_kwargs
        )
    except (ValueError, TypeError) as e:
        raise FeatxError(f"cannot build {cfg.model}: {e}") from None
    if cfg.l2 is not None:
        apply_l2(base, cfg.l2)
    return with_mean_subtraction(base, conf["mean_rgb"])


def _export(model, path: Path) -> int:
    """Save the inference model (no optimizer) atomically; returns its size in bytes."""
    import keras

    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    tmp = path.with_name(f".{path.stem}.partial.keras")
    try:
        inference.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except OSError as e:  # disk full ...: one line; the previous model.keras (if any) is untouched
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    return path.stat().st_size


# ---------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, verbose: int | str = 2,
          on_warning=None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.train`` into ``cfg.out``; see the module docstring.

    ``verbose`` is Keras' (0, 1, 2, "auto"); ``on_warning(msg)`` is called as soon as a warning
    arises (they are also listed in the result and in config.json).
    """
    cfg.check()
    info = _model_info(cfg.model)
    run = RunDir.of(cfg.out)
    _check_output(cfg, run, overwrite=overwrite)
    with output_lock(run.root):
        return _train(cfg, info, run, resume=resume, overwrite=overwrite, verbose=verbose, on_warning=on_warning)


def _check_output(cfg: TrainConfig, run: RunDir, *, overwrite: bool) -> None:
    """Before any work: no input among what the run writes or clears, a featx run folder (or a new or
    empty one), writable."""
    inputs = (cfg.train, cfg.val, cfg.mean, cfg.from_checkpoint)
    check_not_input(run.root, *inputs)
    for p in (run.config, run.mean, run.history, run.curves, run.model, run.eval):
        check_not_input(p, *inputs)
    # a restart from a checkpoint keeps checkpoints/ (--overwrite clears it)
    for d in (run.backup, *((run.checkpoints,) if overwrite else ())):
        check_not_input(d, *inputs, contains=True)
    check_overwritable(run.root)
    check_writable(run.root, folder=True)


def _train(cfg: TrainConfig, info, run: RunDir, *, resume: bool, overwrite: bool, verbose, on_warning) -> TrainResult:
    warnings: list[str] = []
    tr = _open_images(cfg.train, "--train")
    va = None
    try:
        if cfg.val:
            va = _open_images(cfg.val, "--val")
            if va.label_names != tr.label_names:
                raise FeatxError(
                    f"--val labels {va.label_names} differ from --train labels {tr.label_names}; "
                    "use splits written by one featx build"
                )
            if va.row_shape != tr.row_shape:
                raise FeatxError(f"--val images are {va.row_shape}, --train images {tr.row_shape}; they must match")
        if tr.num_classes < 2:
            raise FeatxError(f"{cfg.train} has {tr.num_classes} class; training needs at least 2")
        from featx.preprocess.mean import load_mean

        mean_rgb = load_mean(tr, cfg.mean)
        gpu = _gpu_available()
        conf = _resolved(cfg, info, tr.num_classes, tr.label_names, mean_rgb, tr.row_shape[:2],
                         {"train": len(tr), "val": len(va) if va is not None else 0}, gpu)
        size, (h, w) = conf["input_size"], tr.row_shape[:2]
        if size < info.min_input_size:
            raise FeatxError(f"--input-size {size} is below {cfg.model}'s minimum of {info.min_input_size}px")
        if h < size or w < size:
            raise FeatxError(
                f"stored images are {h}x{w}px, smaller than the {size}px network input; rebuild with "
                f"featx build --size {size} (or larger) or pass --input-size {min(h, w)}"
            )
        if min(h, w) > 2 * size:
            _warn(warnings, on_warning,
                f"stored images ({h}x{w}px) are much larger than the {size}px input: random crops see a small "
                f"part of each image; build with --size ~{int(size * 1.15)} or pass a larger --input-size"
            )
        plan, old = _plan(run, conf, resume=resume, overwrite=overwrite)
        if plan == "complete":
            return _result(run, old, reused=True, warnings=warnings)
        return _fit(cfg, conf, run, tr, va, plan, old, gpu, warnings, verbose)
    finally:
        tr.close()
        if va is not None:
            va.close()


def _fit(cfg, conf, run: RunDir, tr, va, plan, old, gpu, warnings, verbose) -> TrainResult:
    import keras

    from featx.callbacks import EpochCheckpoint, TrainingMonitor
    from featx.optim import carry_slots, make_optimizer
    from featx.preprocess.pipeline import eval_dataset, steps_per_epoch, train_dataset

    run.root.mkdir(parents=True, exist_ok=True)
    segments = list((old or {}).get("segments", []))
    if plan in ("new", "segment"):
        segments.append({k: conf[k] for k in ("initial_epoch", "epochs", "optim", "from_checkpoint", "l2")})
    conf = {**conf, "status": "running", "device": "gpu" if gpu else "cpu", "segments": segments}
    atomic_write_json(run.config, conf)
    r, g, b = conf["mean_rgb"]
    atomic_write_json(run.mean, {"R": r, "G": g, "B": b})

    resumed_from = run.backup_epoch() if plan == "resume" else None
    data_epoch = resumed_from if resumed_from is not None else cfg.initial_epoch
    keras.utils.set_random_seed(cfg.seed)
    steps = steps_per_epoch(len(tr), cfg.batch_size)
    train_ds = train_dataset(tr, cfg.batch_size, conf["input_size"], augment=cfg.augment, seed=cfg.seed,
                             initial_epoch=data_epoch)
    val_ds = eval_dataset(va, cfg.batch_size, conf["input_size"]) if va is not None else None

    previous_policy = keras.config.dtype_policy()
    if conf["mixed_precision"]:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _build_model(cfg, conf)
        old_opt = model.optimizer if cfg.from_checkpoint else None
        optimizer = make_optimizer(cfg.optim, steps_per_epoch=steps, epochs=cfg.epochs, start_epoch=cfg.initial_epoch)
        if old_opt is not None and plan != "resume":
            carry_slots(getattr(old_opt, "inner_optimizer", old_opt), optimizer, model.trainable_variables)
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=conf["xla"],
        )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    conf["params"] = int(model.count_params())
    atomic_write_json(run.config, conf)

    # the backup (the resume point) is written last, after the epoch's history and checkpoint
    callbacks = [
        TrainingMonitor(run.curves, run.history, title=f"{cfg.model} ({run.root.name})"),
        EpochCheckpoint(run.checkpoints, every=cfg.checkpoint_every),
        keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True),
    ]
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=cfg.initial_epoch,
              callbacks=callbacks, verbose=verbose, shuffle=False)  # the reader shuffles

    from featx.callbacks.training_monitor import load_history

    hist = load_history(run.history)
    seconds = float(sum(s for s in hist.get("seconds", []) if s))
    size_bytes = _export(model, run.model)
    done = len(hist.get("epoch", []))
    conf.update(
        status="finished", epochs_done=done, train_seconds=round(seconds, 3),
        train_images_per_second=round(len(tr) * done / seconds, 2) if seconds > 0 else None,
        files={"model": run.model.name, "history": run.history.name, "curves": run.curves.name,
               "mean": run.mean.name, "checkpoints": run.checkpoints.name, "model_size_bytes": size_bytes},
        warnings=warnings,
    )
    atomic_write_json(run.config, conf)
    return _result(run, conf, reused=False, resumed_from=resumed_from, warnings=warnings)

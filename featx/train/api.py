"""``featx train``: fit a scratch model (``scratch_models``) on an HDF5 images store.

Data flow: train.h5 -> :func:`featx.preprocess.pipeline.train_dataset` (block-shuffled every
epoch, every row, random patch crops, augmentation layers, prefetch) -> model whose first layer
subtracts the build's means -> ``model.fit`` under a ``tf.distribute`` strategy
(:mod:`featx.train.strategy`: one device, or MirroredStrategy over local devices; the global batch is
``batch_size`` per replica x replicas, the learning rate scaled by the replicas unless
``lr_scaling=False``) with Keras callbacks:

* :class:`featx.train.callbacks.PreciseBN`: BatchNorm statistics recomputed on training batches before
  every validation (and at the end of an epoch without one), so the saved model scores what the
  training curves promise;
* ``keras.callbacks.ModelCheckpoint(save_best_only=True)`` on ``val_accuracy`` (``keep="best"``):
  the exported ``model.keras`` is the best epoch's;
* ``keras.callbacks.BackupAndRestore`` (``RUN_DIR/backup``): a killed run continues with
  ``--resume`` at the right epoch with its weights and optimizer state (step counter included,
  so the learning-rate schedule continues too);
* :class:`featx.train.callbacks.TrainingMonitor`: ``history.json`` + ``curves.png`` every epoch;
* :class:`featx.train.callbacks.EpochCheckpoint`: ``checkpoints/epoch_NNN.keras`` every N epochs;
* ``keras.callbacks.TensorBoard`` (``tensorboard=DIR``): losses, accuracy and learning rate per
  epoch for ``tensorboard --logdir DIR``.

The book's "stop, then restart from a checkpoint at epoch E with a new learning rate" is
``from_checkpoint=CKPT, initial_epoch=E, optim=OptimConfig(lr=NEW, ...)``: weights and momentum
come from the checkpoint, the schedule is new and runs from epoch E to ``epochs``.

The run state (``config.json``) is :class:`featx.train.config.TrainConfig` resolved for this
machine plus what the run learnt; see that module.

Mixed precision and XLA are decided by :func:`featx.runtime.accel.resolve_accel` (on with a GPU; both can
be forced either way).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from featx import __version__
from featx.errors import FeatxError, OutputExistsError, ParameterError
from featx.outputs import (
    check_not_input,
    check_overwritable,
    check_writable,
    output_lock,
)
from featx.train.config import TrainConfig
from featx.train.rundir import CONFIG_SCHEMA, RunDir
from featx.utils import atomic_write_json

__all__ = ["TrainConfig", "TrainResult", "apply_l2", "train"]

#: Run-state keys that must match when a new segment restarts from a checkpoint in the same folder.
_SEGMENT_FIXED = ("model", "input_size", "classes", "label_names", "train", "mixed_precision")
_BEST = "best.weights.h5"


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
    strategy: str = "one"
    replicas: int = 1
    kept_epoch: int | None = None


# ---------------------------------------------------------------------------------------- helpers
def _model_info(name: str):
    import scratch_models

    try:
        return scratch_models.get_model_info(name)
    except ValueError as e:
        raise ParameterError("model", str(e)) from None


def open_images(path: str, role: str):
    """An images store opened for training (``role``: train or val): rows, RGB (H, W, 3), or one line."""
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


def _identity(state: dict, cfg_keys) -> dict:
    """The part of a run state that a resumed run must share: the config's identity, the data and
    the number of replicas (it sets the global batch and the learning rate)."""
    return {k: state.get(k) for k in (*cfg_keys, *_DATA_KEYS, "replicas")}


_DATA_KEYS = ("classes", "label_names", "mean_rgb", "image_size", "train_rows", "val_rows", "feature_layer")


def _diff(old: dict, new: dict, cfg_keys) -> list[str]:
    a, b = _identity(old, cfg_keys), _identity(new, cfg_keys)
    return sorted(k for k in b if a[k] != b[k])


def _clean(run: RunDir) -> None:
    for p in (run.config, run.mean, run.history, run.curves, run.model, run.eval):
        p.unlink(missing_ok=True)
    for d in (run.backup, run.checkpoints):
        shutil.rmtree(d, ignore_errors=True)


def _plan(run: RunDir, new: dict, cfg_keys, *, resume: bool, overwrite: bool) -> tuple[str, dict | None]:
    """What to do with the run folder: ("new" | "resume" | "segment" | "complete", old state)."""
    if not run.config.exists():
        if resume and not run.backup.exists():
            raise FeatxError(f"`resume`: {run.root} holds no run to resume (no config.json)")
        _clean(run)
        return "new", None
    old = run.read_config()
    if overwrite:
        _clean(run)
        return "new", None
    diff = _diff(old, new, cfg_keys)
    if not diff:
        if old.get("status") == "finished" and run.model.exists():
            return "complete", old
        if not resume:
            at = run.backup_epoch()
            where = f" (last backup after epoch {at})" if at is not None else ""
            raise OutputExistsError(
                f"{run.root} holds an unfinished run{where}: pass `resume` to continue it, or `overwrite` to start over"
            )
        return "resume", old
    if new.get("from_checkpoint") and not resume:
        fixed = [k for k in _SEGMENT_FIXED if old.get(k) != new.get(k)]
        if fixed:
            raise OutputExistsError(
                f"{run.root} holds a run with another {', '.join(fixed)}; restart from a checkpoint into the "
                "same folder only with the same model, data and input size (or use another `out`)"
            )
        shutil.rmtree(run.backup, ignore_errors=True)  # the old segment's state is replaced
        (run.checkpoints / _BEST).unlink(missing_ok=True)
        run.model.unlink(missing_ok=True)
        return "segment", old
    raise OutputExistsError(
        f"{run.root} holds a run made with other parameters (differs in: {', '.join(diff)}); "
        "use another `out`, `overwrite` to start over, or `from_checkpoint` to continue with new settings"
    )


def _result(run: RunDir, conf: dict, *, reused: bool, resumed_from=None, warnings=()) -> TrainResult:
    from featx.train.callbacks.training_monitor import load_history

    hist = load_history(run.history)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v and k not in ("epoch",)}
    return TrainResult(
        run_dir=run.root, model_path=run.model, history_path=run.history, curves_path=run.curves,
        config_path=run.config, initial_epoch=int(conf.get("initial_epoch", 0)),
        epochs=len(hist.get("epoch", [])), train_seconds=float(conf.get("train_seconds") or 0.0),
        params=int(conf.get("params") or 0), last=last, reused=reused, resumed_from=resumed_from,
        warnings=list(warnings), device=conf.get("device", "cpu"), strategy=conf.get("strategy", "one"),
        replicas=int(conf.get("replicas") or 1), kept_epoch=conf.get("kept_epoch"),
    )


def _build_model(cfg: TrainConfig, conf: dict):
    """A fresh model (mean subtraction first), or the checkpoint's model for a new segment."""

    import scratch_models
    from featx.preprocess.mean import with_mean_subtraction

    size = conf["input_size"]
    if cfg.from_checkpoint:
        from featx.runtime.keras_files import load_keras_model

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
    from featx.train.rundir import save_inference_model

    return save_inference_model(model, path)


def _best_epoch(hist: dict, after: int, upto: int | None = None) -> tuple[int | None, float | None]:
    from featx.train.callbacks.training_monitor import best_epoch

    return best_epoch(hist, after, upto)


# ---------------------------------------------------------------------------------------- train
def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False, verbose: int | str = 2,
          on_warning=None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.train`` into ``cfg.out``; see the module docstring.

    ``verbose`` is Keras' (0, 1, 2, "auto"); ``on_warning(msg)`` is called as soon as a warning
    arises (they are also listed in the result and in config.json).
    """
    if cfg.from_checkpoint and not Path(cfg.from_checkpoint).is_file():
        raise ParameterError("from_checkpoint", f"from_checkpoint {cfg.from_checkpoint} does not exist")
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
    if cfg.tensorboard:
        from featx.train.callbacks.tensorboard import require_tensorboard

        require_tensorboard()
        check_not_input(cfg.tensorboard, *inputs, contains=True)
    for p in (run.config, run.mean, run.history, run.curves, run.model, run.eval):
        check_not_input(p, *inputs)
    # a restart from a checkpoint keeps checkpoints/ (--overwrite clears it)
    for d in (run.backup, *((run.checkpoints,) if overwrite else ())):
        check_not_input(d, *inputs, contains=True)
    check_overwritable(run.root)
    check_writable(run.root, folder=True)


def _train(cfg: TrainConfig, info, run: RunDir, *, resume: bool, overwrite: bool, verbose, on_warning) -> TrainResult:
    from featx.runtime.accel import resolve_accel
    from featx.train.config import identity_keys
    from featx.train.strategy import configure_cpu_devices, resolve_strategy

    warnings: list[str] = []
    configure_cpu_devices(cfg.cpu_devices)  # before anything initialises TensorFlow's devices
    tr = open_images(cfg.train, "train")
    va = None
    try:
        if cfg.val:
            va = open_images(cfg.val, "val")
            if va.label_names != tr.label_names:
                raise FeatxError(
                    f"val labels {va.label_names} differ from train labels {tr.label_names}; "
                    "use splits written by one featx build"
                )
            if va.row_shape != tr.row_shape:
                raise FeatxError(f"val images are {va.row_shape}, train images {tr.row_shape}; they must match")
        if tr.num_classes < 2:
            raise FeatxError(f"{cfg.train} has {tr.num_classes} class; training needs at least 2")
        from featx.preprocess.mean import load_mean

        mean_rgb = load_mean(tr, cfg.mean)
        dist = resolve_strategy(cfg.strategy)  # first: JAX's multiworker must start before any device query
        accel = resolve_accel(cfg.mixed_precision, cfg.xla)
        rcfg = cfg.resolve(input_size=info.input_size, accel=accel, strategy=dist.name)
        state = {
            "schema": CONFIG_SCHEMA,
            "featx_version": __version__,
            **rcfg.to_dict(),
            "classes": tr.num_classes,
            "label_names": list(tr.label_names),
            "mean_rgb": [float(m) for m in mean_rgb],
            "image_size": list(tr.row_shape[:2]),
            "train_rows": len(tr),
            "val_rows": len(va) if va is not None else 0,
            "feature_layer": info.feature_layer,
            "replicas": dist.replicas,
            "devices": list(dist.devices),
            "global_batch_size": cfg.batch_size * dist.replicas,
            "lr_scaled": cfg.optim.lr * rcfg.lr_factor(dist.replicas),
            "dtype_policy": accel.policy,  # mixed_bfloat16 / mixed_float16 / float32, as resolve_accel decides
        }
        size, (h, w) = rcfg.input_size, tr.row_shape[:2]
        if size < info.min_input_size:
            raise ParameterError("input_size",
                                 f"input_size {size} is below {cfg.model}'s minimum of {info.min_input_size}px")
        if h < size or w < size:
            raise ParameterError(
                "input_size",
                f"stored images are {h}x{w}px, smaller than the {size}px network input; rebuild with "
                f"featx build --size {size} (or larger) or pass `input_size` {min(h, w)}",
            )
        if min(h, w) > 2 * size:
            _warn(warnings, on_warning,
                f"stored images ({h}x{w}px) are much larger than the {size}px input: random crops see a small "
                f"part of each image; build with --size ~{int(size * 1.15)} or pass a larger `input_size`"
            )
        plan, old = _plan(run, state, identity_keys(), resume=resume, overwrite=overwrite)
        if plan == "complete":
            return _result(run, old, reused=True, warnings=warnings)
        return _fit(rcfg, state, dist, run, tr, va, plan, old, accel.gpus > 0, warnings, verbose)
    finally:
        tr.close()
        if va is not None:
            va.close()


def _callbacks(cfg: TrainConfig, run: RunDir, tr, va, conf: dict, plan: str, resumed_from):
    import keras

    from featx.preprocess.pipeline import batchnorm_dataset
    from featx.train.callbacks import EpochCheckpoint, PreciseBN, TrainingMonitor
    from featx.train.callbacks.training_monitor import load_history

    callbacks = [TrainingMonitor(run.curves, run.history, title=f"{cfg.model} ({run.root.name})")]
    if cfg.precise_bn_images:
        ds, steps = batchnorm_dataset(tr, conf["global_batch_size"], cfg.input_size, images=cfg.precise_bn_images,
                                      seed=cfg.seed + 7919)  # every process the same rows: equal statistics
        callbacks.append(PreciseBN(ds, steps))
    callbacks.append(EpochCheckpoint(run.checkpoints, every=cfg.checkpoint_every))
    if cfg.keep == "best" and va is not None:
        threshold = None
        if plan == "resume" and resumed_from:
            threshold = _best_epoch(load_history(run.history), cfg.initial_epoch, upto=resumed_from)[1]
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run.checkpoints / _BEST), monitor="val_accuracy", mode="max", save_best_only=True,
            save_weights_only=True, initial_value_threshold=threshold, verbose=0,
        ))
    if cfg.tensorboard:
        from featx.train.callbacks.tensorboard import tensorboard_callback

        callbacks.append(tensorboard_callback(cfg.tensorboard))
    # the backup (the resume point) is written last, after the epoch's history and checkpoints
    callbacks.append(keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True))
    return callbacks


def _fit(cfg: TrainConfig, conf, dist, run: RunDir, tr, va, plan, old, gpu, warnings, verbose) -> TrainResult:
    import keras

    from featx.preprocess.pipeline import eval_dataset, steps_per_epoch, train_dataset
    from featx.runtime.backend import set_random_seed
    from featx.train.callbacks.training_monitor import load_history
    from featx.train.optim import carry_slots, compile_for_training, make_optimizer

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
    set_random_seed(cfg.seed)
    batch, classes = conf["global_batch_size"], conf["classes"]
    steps = steps_per_epoch(len(tr), batch)
    shard = dist.data_shard  # JAX data parallel: this process's part of each batch
    train_ds = train_dataset(tr, batch, cfg.input_size, augment=cfg.augment, seed=cfg.seed, initial_epoch=data_epoch,
                             classes=classes, **shard)
    val_ds = eval_dataset(va, batch, cfg.input_size, classes=classes, **shard) if va is not None else None

    previous_policy = keras.config.dtype_policy()
    if cfg.mixed_precision:
        keras.config.set_dtype_policy(mixed_policy(conf))
    try:
        with dist.scope():
            model = _build_model(cfg, conf)
            old_opt = model.optimizer if cfg.from_checkpoint else None
            optimizer = make_optimizer(cfg.optim.scaled(cfg.lr_factor(dist.replicas)), steps_per_epoch=steps,
                                       epochs=cfg.epochs, start_epoch=cfg.initial_epoch)
            if old_opt is not None and plan != "resume":
                carry_slots(getattr(old_opt, "inner_optimizer", old_opt), optimizer, model.trainable_variables)
            compile_for_training(model, optimizer, label_smoothing=cfg.label_smoothing, jit_compile=cfg.xla)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    conf["params"] = int(model.count_params())
    atomic_write_json(run.config, conf)

    callbacks = _callbacks(cfg, run, tr, va, conf, plan, resumed_from)
    model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, initial_epoch=cfg.initial_epoch,
              callbacks=callbacks, verbose=verbose, shuffle=False)  # the reader shuffles

    hist = load_history(run.history)
    done = len(hist.get("epoch", []))
    kept = done
    best_path = run.checkpoints / _BEST
    if cfg.keep == "best" and va is not None and best_path.exists():
        kept = _best_epoch(hist, cfg.initial_epoch)[0] or done
        if kept != done:
            with dist.scope():
                model.load_weights(best_path)
    seconds = float(sum(s for s in hist.get("seconds", []) if s))
    size_bytes = _export(model, run.model)
    conf.update(
        status="finished", epochs_done=done, train_seconds=round(seconds, 3),
        train_images_per_second=round(len(tr) * done / seconds, 2) if seconds > 0 else None,
        kept_epoch=kept, kept_by="val_accuracy" if cfg.keep == "best" and va is not None else "last epoch",
        files={"model": run.model.name, "history": run.history.name, "curves": run.curves.name,
               "mean": run.mean.name, "checkpoints": run.checkpoints.name, "model_size_bytes": size_bytes},
        warnings=warnings,
    )
    atomic_write_json(run.config, conf)
    return _result(run, conf, reused=False, resumed_from=resumed_from, warnings=warnings)


def mixed_policy(conf: dict) -> str:
    """The Keras mixed-precision policy of a run state: ``resolve_accel``'s (``mixed_bfloat16`` where
    every GPU computes bfloat16, else ``mixed_float16``); ``mixed_float16`` for a state written before
    featx recorded it."""
    policy = conf.get("dtype_policy")
    return policy if policy in ("mixed_bfloat16", "mixed_float16") else "mixed_float16"

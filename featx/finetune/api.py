"""``featx finetune``: a pretrained backbone adapted to an images store, linear probe first.

Data flow: train.h5 -> :func:`featx.preprocess.pipeline.train_dataset` (block-shuffled, random
crops when the stored images are larger than the network input, augmentation) -> the network of
:mod:`featx.finetune.network` (raw 0..255 RGB in, the backbone's resize and preprocessing inside)
-> ``model.fit`` twice, one call per phase (:mod:`featx.finetune.config`):

1. ``head``: backbone frozen, head trained (skipped by default when the head comes from a
   ``featx fit`` classifier: LP-FT, Kumar et al. 2022); the run then starts at the probe;
2. ``finetune``: the top blocks unfrozen, BatchNorm frozen in inference mode, AdamW with warmup
   and cosine decay. Before its first step the network is scored on the validation images; with
   ``keep="best"`` the saved model is the best of that starting point and the phase's epochs, so
   the fine-tuned network never scores below where it started (for LP-FT: the probe) on them.

Everything ``featx train`` has, through its public names: the run folder (:class:`RunDir`:
``model.keras``, ``history.json``, ``curves.png``, ``config.json`` with both phases, one run per
folder under a lock), :class:`TrainingMonitor`, :class:`EpochCheckpoint`, Keras' ``BackupAndRestore``
(``--resume`` after a kill continues the phase it was in, at the right epoch, with the optimizer
state), ``ModelCheckpoint`` for ``keep="best"``, ``TensorBoard``, strategies and
:func:`featx.runtime.accel.resolve_accel` (mixed precision and XLA on with a GPU).

``checkpoints/start.weights.h5`` holds the network phase 2 starts from (the resume point of a run
killed before its first phase-2 epoch, and the kept model when no epoch beats it).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from featx import __version__
from featx.errors import FeatxError, OutputExistsError, ParameterError
from featx.finetune.config import FinetuneConfig, identity_keys
from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock
from featx.train import CONFIG_SCHEMA, RunDir, open_images
from featx.utils import atomic_write_json

__all__ = ["FinetuneResult", "finetune"]

KIND = "finetune"
START = "start.weights.h5"
BEST = "best.weights.h5"
#: images the folded head is checked on (network vs classifier probabilities)
HEAD_CHECK_IMAGES = 64
#: largest network-vs-classifier difference accepted for a folded head (float32 arithmetic: ~1e-6)
HEAD_CHECK_TOLERANCE = 1e-3
_DATA_KEYS = ("classes", "label_names", "stored_size", "train_rows", "val_rows", "replicas", "backbone_settings",
              "head_sha256")


@dataclass
class FinetuneResult:
    run_dir: Path
    model_path: Path
    history_path: Path
    curves_path: Path
    config_path: Path
    epochs: int
    head_epochs: int
    train_seconds: float
    params: int
    trainable_params: int
    start: dict = field(default_factory=dict)
    last: dict = field(default_factory=dict)
    kept_epoch: int | None = None
    reused: bool = False
    resumed_from: int | None = None
    head_check: dict | None = None
    device: str = "cpu"
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------- inputs


def _classifier(cfg: FinetuneConfig, label_names: list[str]):
    """(estimator, manifest) of ``cfg.head``, verified, with the same labels as the training data."""
    from featx.fit import load_classifier

    estimator, manifest = load_classifier(cfg.head)
    names = list(manifest.get("label_names") or [])
    if names != list(label_names):
        raise ParameterError("head", f"`head` {cfg.head} knows the labels {names}; {cfg.train} has {list(label_names)}: "
                                     "fit the classifier on features of the same featx build")
    return estimator, manifest


def check_head_settings(manifest: dict, settings: dict, head: str) -> None:
    """Refuse a classifier fit on features of other backbone settings, naming each that differs."""
    from featx.fit import settings_mismatch

    recorded = manifest.get("backbone") if isinstance(manifest.get("backbone"), dict) else None
    if not recorded:
        raise ParameterError("head", f"`head` {head} records no backbone settings (features made outside featx extract)")
    diff = settings_mismatch(recorded, settings)
    if diff:
        said = "; ".join(f"{k} {a} where this run has {b}" for k, a, b in diff)
        flags = " ".join(f"{flag} {recorded[k]}" for k, flag in (("image_size", "--image-size"), ("weights", "--weights"))
                         if any(d[0] == k for d in diff) and recorded.get(k) is not None)
        raise ParameterError(
            "head", f"`head` {head} was fit on features of other backbone settings ({said}): fine-tune with the "
            f"classifier's settings{' (' + flags + ')' if flags else ''} or fit a classifier on this backbone's features")
    dim = manifest.get("feature_dim")
    if dim is not None and settings.get("dim") is not None and int(dim) != int(settings["dim"]):
        raise ParameterError("head", f"`head` {head} takes {dim}-d features; this backbone gives {settings['dim']}-d")


def _expected_settings(cfg: FinetuneConfig) -> dict | None:
    """The backbone settings without building it (registered names), or None (``keras:``, ``hub:``)."""
    from featx.backbones.backbone import backbone_settings
    from featx.backbones.registry import BACKBONES

    if cfg.backbone not in BACKBONES:  # keras:PATH, hub:PRESET: known once loaded
        return None
    return backbone_settings(cfg.backbone, cfg.weights, cfg.image_size)


def _build_backbone(cfg: FinetuneConfig, policy: str):
    """The backbone under ``policy`` (``float32`` or :attr:`~featx.runtime.accel.Accel.policy`'s mixed one)."""
    from featx.backbones import build_backbone

    weights = None if str(cfg.weights).lower() == "none" else cfg.weights
    mixed = policy if policy != "float32" else False
    return build_backbone(cfg.backbone, weights=weights, image_size=cfg.image_size, mixed_precision=mixed)


# ---------------------------------------------------------------------------------------- run folder
def _check_output(cfg: FinetuneConfig, run: RunDir) -> None:
    from featx.backbones.registry import KERAS_PREFIX

    inputs = [cfg.train, cfg.val, cfg.head]
    if cfg.backbone.lower().startswith(KERAS_PREFIX):
        from featx.backbones.saved import parse_keras_spec

        inputs.append(parse_keras_spec(cfg.backbone)[0])
    if cfg.head:
        from featx.fit import side_paths

        inputs.append(str(side_paths(cfg.head)[0]))
    check_not_input(run.root, *inputs)
    for p in (run.config, run.history, run.curves, run.model, run.eval):
        check_not_input(p, *inputs)
    check_not_input(run.backup, *inputs, contains=True)
    check_not_input(run.checkpoints, *inputs, contains=True)
    if cfg.tensorboard:
        from featx.train import require_tensorboard

        require_tensorboard()
        check_not_input(cfg.tensorboard, *inputs, contains=True)
    check_overwritable(run.root)
    check_writable(run.root, folder=True)


def _identity(state: dict) -> dict:
    return {k: state.get(k) for k in (*identity_keys(), *_DATA_KEYS)}


def _clean(run: RunDir) -> None:
    for p in (run.config, run.history, run.curves, run.model, run.eval):
        p.unlink(missing_ok=True)
    for d in (run.backup, run.checkpoints):
        shutil.rmtree(d, ignore_errors=True)


def _plan(run: RunDir, state: dict, *, resume: bool, overwrite: bool) -> tuple[str, dict | None]:
    """"new" | "resume" | "complete", and the old state."""
    if not run.config.exists() or overwrite:
        if resume and not run.config.exists():
            raise FeatxError(f"`resume`: {run.root} holds no run to resume (no config.json)")
        _clean(run)
        return "new", None
    old = run.read_config()
    a, b = _identity(old), _identity(state)
    diff = sorted(k for k in b if a.get(k) != b[k])
    if diff:
        raise OutputExistsError(
            f"{run.root} holds a run made with other parameters (differs in: {', '.join(diff)}); "
            "use another `out` or `overwrite` to start over")
    if old.get("status") == "finished" and run.model.exists():
        return "complete", old
    if not resume:
        raise OutputExistsError(f"{run.root} holds an unfinished run (phase {old.get('phase')}): pass `resume` to "
                                "continue it, or `overwrite` to start over")
    return "resume", old


def _save_weights(model, path: Path) -> None:
    import os

    tmp = path.with_name(f".{path.name[: -len('.weights.h5')]}-partial.weights.h5")
    model.save_weights(tmp, overwrite=True)
    os.replace(tmp, path)


def _result(run: RunDir, conf: dict, *, reused: bool, resumed_from=None) -> FinetuneResult:
    from featx.train import load_history

    hist = load_history(run.history)
    last = {k: v[-1] for k, v in hist.items() if isinstance(v, list) and v and k != "epoch"}
    return FinetuneResult(
        run_dir=run.root, model_path=run.model, history_path=run.history, curves_path=run.curves,
        config_path=run.config, epochs=len(hist.get("epoch", [])), head_epochs=int(conf.get("head_epochs") or 0),
        train_seconds=float(conf.get("train_seconds") or 0.0), params=int(conf.get("params") or 0),
        trainable_params=int(conf.get("trainable_params") or 0), start=dict(conf.get("start") or {}), last=last,
        kept_epoch=conf.get("kept_epoch"), reused=reused, resumed_from=resumed_from, head_check=conf.get("head_check"),
        device=conf.get("device", "cpu"), warnings=list(conf.get("warnings") or []),
    )


# ---------------------------------------------------------------------------------------- finetune
def finetune(cfg: FinetuneConfig, *, resume: bool = False, overwrite: bool = False, verbose: int | str = 2,
             on_warning=None) -> FinetuneResult:
    """Fine-tune ``cfg.backbone`` on ``cfg.train`` into ``cfg.out``; see the module docstring."""
    if resume and overwrite:
        raise ParameterError("resume", "`resume` and `overwrite` exclude each other")
    run = RunDir.of(cfg.out)
    _check_output(cfg, run)
    with output_lock(run.root):
        return _finetune(cfg, run, resume=resume, overwrite=overwrite, verbose=verbose, on_warning=on_warning)


def _finetune(cfg: FinetuneConfig, run: RunDir, *, resume, overwrite, verbose, on_warning) -> FinetuneResult:
    from featx.runtime.accel import resolve_accel
    from featx.train import configure_cpu_devices, resolve_strategy

    warnings: list[str] = []
    configure_cpu_devices(cfg.cpu_devices)
    tr = open_images(cfg.train, "train")
    va = None
    try:
        if cfg.val:
            va = open_images(cfg.val, "val")
            if va.label_names != tr.label_names:
                raise FeatxError(f"val labels {va.label_names} differ from train labels {tr.label_names}; "
                                 "use splits written by one featx build")
            if va.row_shape != tr.row_shape:
                raise FeatxError(f"val images are {va.row_shape}, train images {tr.row_shape}; they must match")
        if tr.num_classes < 2:
            raise FeatxError(f"{cfg.train} has {tr.num_classes} class; fine-tuning needs at least 2")
        names = list(tr.label_names)
        clf = _classifier(cfg, names) if cfg.head else None
        expected = _expected_settings(cfg)
        if clf is not None and expected is not None:
            check_head_settings(clf[1], expected, cfg.head)  # before building anything
        h, w = tr.row_shape[:2]
        side = int(cfg.input_size or min(h, w))
        if side > min(h, w):
            raise ParameterError("input_size", f"`input_size` {side} is larger than the stored {h}x{w}px images; "
                                               f"pass at most {min(h, w)} (the network resizes to the backbone's side itself)")
        accel = resolve_accel(cfg.mixed_precision, cfg.xla)
        dist = resolve_strategy(cfg.strategy)
        with dist.scope():
            backbone = _build_backbone(cfg, accel.policy)
        if clf is not None:
            check_head_settings(clf[1], backbone.settings, cfg.head)
        rcfg = cfg.resolve(image_size=backbone.image_size, input_size=side, accel=accel, strategy=dist.name)
        state = {
            "schema": CONFIG_SCHEMA,
            "kind": KIND,
            "featx_version": __version__,
            **rcfg.to_dict(),
            "model": _method(rcfg, backbone.settings),
            "method": _method(rcfg, backbone.settings),
            "backbone_settings": backbone.settings,
            "head_sha256": (clf[1].get("sha256") if clf else None),
            "classes": tr.num_classes,
            "label_names": names,
            "stored_size": [int(h), int(w)],
            "train_rows": len(tr),
            "val_rows": len(va) if va is not None else 0,
            "replicas": dist.replicas,
            "devices": list(dist.devices),
            "global_batch_size": cfg.batch_size * dist.replicas,
            "phases": rcfg.phases(dist.replicas),
            "probe": _probe_costs(clf[1]) if clf else None,
            "dtype_policy": accel.policy,  # mixed_bfloat16 / mixed_float16 / float32, as resolve_accel decides
        }
        if backbone.settings.get("weights") == "none":
            _warn(warnings, on_warning, "weights=none: the backbone starts from random weights, not pretrained ones")
        plan, old = _plan(run, state, resume=resume, overwrite=overwrite)
        if plan == "complete":
            return _result(run, old, reused=True)
        return _run(rcfg, state, old, backbone, clf, dist, accel, run, tr, va, warnings, verbose)
    finally:
        tr.close()
        if va is not None:
            va.close()


def _method(cfg: FinetuneConfig, settings: dict) -> str:
    from featx.backbones.registry import KERAS_PREFIX

    name = settings.get("name", cfg.backbone)
    if name.startswith(KERAS_PREFIX):
        parts = name[len(KERAS_PREFIX):].rsplit(":", 1)[0].replace("\\", "/").split("/")
        name = KERAS_PREFIX + "/".join(parts[-2:])
    how = "LP-FT" if cfg.head else ("head, then fine-tuned" if cfg.head_phase_epochs else "fine-tuned, random head")
    return f"{name} fine-tuned ({how})"


def _probe_costs(manifest: dict) -> dict:
    """Seconds the probe the head came from took: extraction (when recorded) + fit."""
    ext = manifest.get("extract") or {}
    fit_s = manifest.get("fit_seconds")
    out = {"fit_seconds": fit_s, "extract_seconds": ext.get("seconds"), "method": manifest.get("method")}
    out["seconds"] = (float(fit_s or 0.0) + float(ext.get("seconds") or 0.0)) if fit_s is not None else None
    return out


def _warn(warnings: list, on_warning, msg: str) -> None:
    warnings.append(msg)
    if on_warning is not None:
        on_warning(msg)


# ---------------------------------------------------------------------------------------- phases
def _compile(net, optim, steps: int, epochs: int, start_epoch: int, cfg: FinetuneConfig, factor: float):
    from featx.train import compile_for_training, make_optimizer

    optimizer = make_optimizer(optim.scaled(factor), steps_per_epoch=steps, epochs=epochs, start_epoch=start_epoch)
    compile_for_training(net.model, optimizer, label_smoothing=cfg.label_smoothing, jit_compile=cfg.xla)


def _network(cfg: FinetuneConfig, backbone, classes: int, head, dist, policy: str):
    import keras

    from featx.finetune.network import build_network

    previous = keras.config.dtype_policy()
    if policy != "float32":
        keras.config.set_dtype_policy(policy)
    try:
        with dist.scope():
            return build_network(backbone, classes, input_size=cfg.input_size, dropout=cfg.dropout, head=head)
    finally:
        keras.config.set_dtype_policy(previous)


def _head_check(net, estimator, reader, classes: int, input_size: int) -> dict:
    """Network vs classifier probabilities on the first images (the fold's self-check)."""
    import keras
    import numpy as np

    from featx.fit import full_proba
    from featx.preprocess.crop import center_crop

    n = min(HEAD_CHECK_IMAGES, len(reader))
    x = np.asarray(center_crop(np.asarray(reader.read(0, n), dtype=np.float32), input_size))
    features = keras.Model(net.model.inputs, net.head.input)
    f = np.asarray(features(x, training=False), dtype=np.float64)
    p_net = np.asarray(net.model(x, training=False), dtype=np.float64)
    p_clf = full_proba(estimator, f.astype(np.float32), classes)
    diff = float(np.abs(p_net - p_clf).max())
    if diff > HEAD_CHECK_TOLERANCE:
        raise FeatxError(f"the head folded from the classifier does not reproduce it: max |p_net - p_clf| = {diff:.2e} "
                         f"on {n} images (tolerance {HEAD_CHECK_TOLERANCE:g})")
    return {"images": int(n), "max_abs_diff": diff}


def _callbacks(cfg: FinetuneConfig, run: RunDir, title: str, *, best_threshold=None):
    import keras

    from featx.train import EpochCheckpoint, TrainingMonitor, tensorboard_callback

    callbacks = [TrainingMonitor(run.curves, run.history, title=title),
                 EpochCheckpoint(run.checkpoints, every=cfg.checkpoint_every)]
    if best_threshold is not None:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.ModelCheckpoint(
            str(run.checkpoints / BEST), monitor="val_accuracy", mode="max", save_best_only=True,
            save_weights_only=True, initial_value_threshold=best_threshold, verbose=0))
    if cfg.tensorboard:
        callbacks.append(tensorboard_callback(cfg.tensorboard))
    # the resume point, written last; kept until the phase's outcome is recorded
    callbacks.append(keras.callbacks.BackupAndRestore(str(run.backup), double_checkpoint=True, delete_checkpoint=False))
    return callbacks


def _run(cfg: FinetuneConfig, conf: dict, old: dict | None, backbone, clf, dist, accel, run: RunDir, tr, va,
         warnings, verbose) -> FinetuneResult:
    from featx.finetune.network import set_phase
    from featx.preprocess.pipeline import eval_dataset, steps_per_epoch, train_dataset
    from featx.runtime.backend import set_random_seed
    from featx.train import best_epoch, load_history

    run.root.mkdir(parents=True, exist_ok=True)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    phase = (old or {}).get("phase") or ("head" if cfg.head_phase_epochs else "finetune")
    start_path = run.checkpoints / START
    if phase == "finetune" and old is not None and not start_path.exists():
        phase = "head" if cfg.head_phase_epochs else "finetune"  # killed before the start point was saved
    conf = {**conf, "status": "running", "phase": phase, "device": "gpu" if accel.gpus else "cpu",
            "warnings": warnings, **{k: old[k] for k in ("start", "head_check", "seconds_by_phase") if old and k in old}}
    conf.setdefault("seconds_by_phase", {})
    atomic_write_json(run.config, conf)

    classes, batch = conf["classes"], conf["global_batch_size"]
    steps = steps_per_epoch(len(tr), batch)
    factor = cfg.lr_factor(dist.replicas)
    e1, total = cfg.head_phase_epochs, cfg.total_epochs
    resumed_from = run.backup_epoch() if old is not None else None
    set_random_seed(cfg.seed)  # never imports TensorFlow under JAX/PyTorch
    head = None
    if clf is not None:
        from featx.fit import dense_head

        head = dense_head(clf[0], n_classes=classes)
    shard = dist.data_shard  # JAX data parallel: this process's part of each batch
    val_ds = eval_dataset(va, batch, cfg.input_size, classes=classes, **shard) if va is not None else None
    title = f"{conf['method']} ({run.root.name})"

    # ---- phase 1: the head alone
    if phase == "head":
        net = _network(cfg, backbone, classes, head, dist, accel.policy)
        if clf is not None and "head_check" not in conf:
            conf["head_check"] = _head_check(net, clf[0], va if va is not None else tr, classes, cfg.input_size)
        set_phase(net, "head")
        with dist.scope():
            _compile(net, cfg.head_optim(), steps, e1, 0, cfg, factor)
        data_epoch = run.backup_epoch() or 0
        train_ds = train_dataset(tr, batch, cfg.input_size, augment=cfg.augment, seed=cfg.seed,
                                 initial_epoch=data_epoch, classes=classes, **shard)
        t0 = time.perf_counter()
        net.model.fit(train_ds, validation_data=val_ds, epochs=e1, initial_epoch=0,
                      callbacks=_callbacks(cfg, run, title), verbose=verbose, shuffle=False)
        _save_weights(net.model, start_path)
        conf["phase"] = "finetune"
        conf["seconds_by_phase"]["head"] = round(float(conf["seconds_by_phase"].get("head", 0.0))
                                                 + time.perf_counter() - t0, 3)
        atomic_write_json(run.config, conf)
        shutil.rmtree(run.backup, ignore_errors=True)
        resumed_phase2 = None
    else:
        resumed_phase2 = resumed_from

    # ---- phase 2: fine-tune (a fresh network from the start point: the same path after a kill)
    if phase == "head":  # phase 1's network holds the first backbone
        with dist.scope():
            backbone = _build_backbone(cfg, accel.policy)
    net = _network(cfg, backbone, classes, head, dist, accel.policy)
    if start_path.exists():
        with dist.scope():
            net.model.load_weights(start_path)
    else:  # the start point is the new network: the probe's head (LP-FT) or a random one
        if clf is not None:
            conf["head_check"] = _head_check(net, clf[0], va if va is not None else tr, classes, cfg.input_size)
        _save_weights(net.model, start_path)
    blocks = set_phase(net, "finetune", cfg.unfreeze)
    with dist.scope():
        _compile(net, cfg.finetune_optim(), steps, total, e1, cfg, factor)
    params, trainable = net.params()
    conf.update(params=params, trainable_params=trainable, unfrozen_blocks=blocks["unfrozen_blocks"],
                backbone_blocks=len(net.blocks), batchnorm_layers=_count_bn(net))
    if val_ds is not None and "start" not in conf:
        res = net.model.evaluate(val_ds, verbose=0, return_dict=True)
        conf["start"] = {"epoch": e1, "val_loss": float(res["loss"]), "val_accuracy": float(res["accuracy"])}
    atomic_write_json(run.config, conf)

    threshold = None
    if cfg.keep == "best" and va is not None:
        threshold = conf["start"]["val_accuracy"]
        if resumed_phase2:
            prior = best_epoch(load_history(run.history), e1, upto=resumed_phase2)[1]
            threshold = max(threshold, prior) if prior is not None else threshold
    data_epoch = resumed_phase2 if resumed_phase2 is not None else e1
    train_ds = train_dataset(tr, batch, cfg.input_size, augment=cfg.augment, seed=cfg.seed + 1,
                             initial_epoch=data_epoch, classes=classes, **shard)
    t0 = time.perf_counter()
    net.model.fit(train_ds, validation_data=val_ds, epochs=total, initial_epoch=e1,
                  callbacks=_callbacks(cfg, run, title, best_threshold=threshold), verbose=verbose, shuffle=False)
    conf["seconds_by_phase"]["finetune"] = round(float(conf["seconds_by_phase"].get("finetune", 0.0))
                                                 + time.perf_counter() - t0, 3)

    hist = load_history(run.history)
    done = len(hist.get("epoch", []))
    kept, kept_by = done, "last epoch"
    if cfg.keep == "best" and va is not None:
        kept_by = "val_accuracy"
        best = best_epoch(hist, e1)
        best_path = run.checkpoints / BEST
        if best[0] is not None and best[1] > conf["start"]["val_accuracy"] and best_path.exists():
            kept = best[0]
            if kept != done:
                net.model.load_weights(best_path)
        else:  # no fine-tuning epoch beat the start point: keep it
            kept = e1
            net.model.load_weights(start_path)
    from featx.train import save_inference_model

    size_bytes = save_inference_model(net.model, run.model)
    seconds = float(sum(conf["seconds_by_phase"].values()))  # wall time of both phases, compilation included
    probe_s = (conf.get("probe") or {}).get("seconds")
    conf.update(
        status="finished", phase="done", epochs_done=done, train_seconds=round(seconds, 3),
        total_seconds=round(seconds + float(probe_s or 0.0), 3),
        train_images_per_second=_epoch_rate(hist, len(tr)),
        kept_epoch=kept, kept_by=kept_by,
        files={"model": run.model.name, "history": run.history.name, "curves": run.curves.name,
               "checkpoints": run.checkpoints.name, "model_size_bytes": size_bytes},
    )
    atomic_write_json(run.config, conf)
    shutil.rmtree(run.backup, ignore_errors=True)
    return _result(run, conf, reused=False, resumed_from=resumed_from)


def _epoch_rate(hist: dict, rows: int) -> float | None:
    """Training images per second over the recorded epochs (validation included, as featx train counts)."""
    secs = [s for s in hist.get("seconds", []) if s]
    return round(rows * len(secs) / sum(secs), 2) if secs else None


def _count_bn(net) -> int:
    from featx.backbones.layers import batchnorm_layers

    return len(batchnorm_layers(net.base))

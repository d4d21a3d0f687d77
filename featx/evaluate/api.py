"""``featx evaluate``: rank-1 / rank-5 accuracy, per-class report and confusion matrix.

Two kinds of target, one metrics record (:mod:`featx.results.metrics`, read by ``featx report``):

* a ``featx train`` run folder (or a ``.keras`` model / checkpoint inside one) on an *images*
  file: single-crop (center crop at the model input size) and, with ``ten_crop=True``, the 4
  corners + center and their mirrors, all 10 crops of a batch in one forward pass, the
  probabilities averaged on the device;
* a ``featx fit`` classifier on a *features* file (no ten-crop there).

Every row is scored: batches come from the store in order, the last partial batch included, and
rank-k is :func:`sklearn.metrics.top_k_accuracy_score` over all N rows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from featx.errors import FeatxError
from featx.results.metrics import make_metrics, score, write_metrics
from featx.train import RunDir, is_run_dir


@dataclass
class EvalResult:
    record: dict
    path: Path
    report_text: str


def _timing(rank: dict, seconds: float, rows: int) -> dict:
    return {
        "rank1": rank["rank1"],
        "rank5": rank["rank5"],
        "seconds": round(seconds, 4),
        "images_per_second": round(rows / seconds, 2) if seconds > 0 else None,
    }


def default_output(target: str | os.PathLike) -> Path:
    """RUN_DIR/eval.json for a run folder; ``NAME.eval.json`` next to a model or classifier file."""
    p = Path(target)
    return p / "eval.json" if p.is_dir() else p.with_name(f"{p.stem}.eval.json")


# ------------------------------------------------------------------------------- scratch models
def _resolve_run(target: Path) -> tuple[Path, dict | None, Path | None]:
    """(model path, run config or None, run folder or None) for a run folder or a .keras file."""
    if target.is_dir():
        run = RunDir.of(target)
        conf = run.read_config()
        if not run.model.exists():
            at = run.backup_epoch()
            hint = f" (training stopped after epoch {at}: featx train ... --resume)" if at is not None else ""
            raise FeatxError(f"{target} has no model.keras yet{hint}")
        return run.model, conf, run.root
    for folder in (target.parent, target.parent.parent):  # RUN_DIR/model.keras, RUN_DIR/checkpoints/x.keras
        if is_run_dir(folder):
            return target, RunDir.of(folder).read_config(), folder
    return target, None, None


def predict_images(model, reader, input_size: int, *, ten_crop: bool, batch_size: int, progress=None):
    """Probabilities ``(N, K)`` for every row of an images store, and the seconds the pass took.

    Batches are read in order (contiguous slabs, one batch ahead on a thread); each is cast,
    cropped and scored by one compiled call (``model(x, training=False)`` through
    :func:`featx.runtime.backend.compile_forward`: a ``tf.function``, ``jax.jit`` or eager
    PyTorch). Compiling happens on the first batch (and the last partial batch's shape) before the
    clock starts, so the time is the steady-state cost of the whole pass.
    """
    from keras import ops

    from featx.data.loader import prefetched
    from featx.preprocess.crop import center_crop
    from featx.preprocess.tencrop import average_crops
    from featx.preprocess.tencrop import ten_crop as make_ten_crops
    from featx.runtime import backend

    def single(x):
        return ops.cast(model(center_crop(ops.cast(x, "float32"), input_size), training=False), "float32")

    def tencrop(x):
        probs = model(make_ten_crops(ops.cast(x, "float32"), input_size), training=False)
        return average_crops(ops.cast(probs, "float32"))

    step = backend.compile_forward(tencrop if ten_crop else single, jit=backend.backend_name() == "jax", model=model)
    first = reader.read(0, min(batch_size, len(reader)))
    step(first)  # trace (and build) outside the timed pass
    if len(reader) % batch_size and len(reader) > batch_size:
        step(first[: len(reader) % batch_size])  # the last partial batch's shape, traced too
    out = []
    bar = tqdm(total=len(reader), desc="ten-crop" if ten_crop else "single-crop", unit="img",
               disable=None if progress is None else not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    with bar:
        for x, _ in prefetched(reader.iter_batches(batch_size)):
            out.append(backend.to_numpy(step(x)))
            bar.update(int(x.shape[0]))
    seconds = time.perf_counter() - t0
    probs = np.concatenate(out).astype(np.float64)
    if probs.shape[0] != len(reader):  # pragma: no cover - the reader guarantees every row
        raise FeatxError(f"scored {probs.shape[0]} rows of {len(reader)}")
    return probs, seconds


def evaluate_network(target, data, *, ten_crop=False, batch_size=64, out=None, progress=None) -> EvalResult:
    """Evaluate a scratch model (run folder, model.keras or checkpoint) on an images file."""
    from featx.runtime.keras_files import load_keras_model
    from featx.store import open_store

    target = Path(target)
    model_path, conf, run_root = _resolve_run(target)
    model = load_keras_model(model_path, compile=False)
    in_shape = tuple(model.input_shape)
    if len(in_shape) != 4 or in_shape[1] != in_shape[2]:
        raise FeatxError(f"{model_path} takes inputs of shape {in_shape}; expected square RGB images (None, S, S, 3)")
    size = int(in_shape[1])
    with open_store(data, kind="images") as reader:
        names = list(conf["label_names"]) if conf else reader.label_names
        if reader.label_names != names:
            raise FeatxError(
                f"{data} has labels {reader.label_names}, the model was trained on {names}; "
                "evaluate on a split written by the same featx build"
            )
        if int(model.output_shape[-1]) != len(names):
            raise FeatxError(f"{model_path} predicts {model.output_shape[-1]} classes, {data} has {len(names)}")
        h, w = reader.row_shape[:2]
        if h < size or w < size:
            raise FeatxError(
                f"{data} holds {h}x{w}px images, smaller than the model's {size}px input; "
                f"build the data with featx build --size {size} or larger"
            )
        if ten_crop and h == size and w == size:
            raise FeatxError(
                f"--ten-crop needs stored images larger than the {size}px model input; {data} holds {h}x{w}px "
                f"(rebuild with featx build --size {int(size * 1.15) + 1} or more)"
            )
        y = reader.labels
        probs, secs = predict_images(model, reader, size, ten_crop=False, batch_size=batch_size, progress=progress)
        single = score(y, probs, names)
        tc = None
        if ten_crop:
            probs10, secs10 = predict_images(model, reader, size, ten_crop=True, batch_size=batch_size, progress=progress)
            tc = {**_timing(score(y, probs10, names), secs10, len(y)), "seconds_over_single": round(secs10 / secs, 3)}
        rows = len(reader)
    history = None
    if run_root is not None and (run_root / "history.json").exists():
        history = str(run_root / "history.json")
    conf = conf or {}
    finetuned = conf.get("kind") == "finetune"
    record = make_metrics(
        method=conf.get("method") or conf.get("model") or model.name,
        kind="finetune" if finetuned else "scratch",
        model={"name": conf.get("model") or model.name,
               "backbone": (conf.get("backbone_settings") or {}).get("name") if finetuned else None,
               "params": int(model.count_params()), "trainable_params": _trainable(model),
               "size_bytes": model_path.stat().st_size, "path": str(model_path), "input_size": size},
        data={"path": str(data), "rows": rows, "label_names": names},
        single_crop=_timing(single, secs, rows),
        ten_crop=tc,
        train_seconds=conf.get("train_seconds"),
        classification_report=single["classification_report"],
        confusion_matrix=single["confusion_matrix"],
        history=history,
        warnings=list(conf.get("warnings", [])),
        config={"batch_size": batch_size, "ten_crop": bool(ten_crop), "report_from": "single_crop",
                "run_dir": None if run_root is None else str(run_root)},
    )
    if finetuned:  # what the fine-tuned network cost: its probe (LP-FT), the head phase, fine-tuning
        by_phase = conf.get("seconds_by_phase") or {}
        record["finetune"] = {"probe": conf.get("probe"), "head_epochs": conf.get("head_epochs"),
                              "epochs": conf.get("epochs"), "unfreeze": conf.get("unfreeze"),
                              "head_seconds": by_phase.get("head"), "finetune_seconds": by_phase.get("finetune"),
                              "start": conf.get("start"), "kept_epoch": conf.get("kept_epoch")}
    path = Path(out) if out else default_output(target)
    write_metrics(path, record)
    return EvalResult(record, path, single["classification_report_text"])


def _trainable(model) -> int:
    """Parameters the run trained (Keras' trainable weights; BatchNorm statistics never are)."""
    import math

    return int(sum(math.prod(w.shape) for w in model.trainable_weights))


# ------------------------------------------------------------------------------- classifiers
def _manifest_backbone(manifest: dict) -> tuple[str | None, str | None]:
    """(backbone name, weights) recorded in a classifier manifest (a settings dict, or a name)."""
    bb = manifest.get("backbone")
    if isinstance(bb, dict):
        return bb.get("name"), bb.get("weights")
    return (str(bb) if bb else None), None


def evaluate_classifier(target, data, *, ten_crop=False, batch_size=4096, out=None, progress=None) -> EvalResult:
    """Evaluate an exported ``featx fit`` classifier on a features file (from ``featx extract``)."""
    from featx.fit import check_feature_settings, full_proba, load_classifier
    from featx.results.costs import evaluation_costs, read_timing
    from featx.store import feature_settings, open_store

    if ten_crop:
        raise FeatxError("--ten-crop applies to scratch models on images files, not to a classifier on features")
    target = Path(target)
    estimator, manifest = load_classifier(target)
    names = list(manifest.get("label_names") or [])
    mb, mw = _manifest_backbone(manifest)
    with open_store(data, kind="features") as reader:
        dim, want = reader.row_shape[0], manifest.get("feature_dim")
        if want is not None and int(want) != dim:
            raise FeatxError(
                f"{data} holds {dim}-d features, the classifier expects {want}-d ({mb}); extract with the same backbone"
            )
        recorded = feature_settings(reader.attrs)
        fb, fw = recorded.get("name"), recorded.get("weights")
        if fb and mb and fb != mb:
            raise FeatxError(f"{data} holds {fb} features, the classifier was fit on {mb} features")
        if fw and mw and fw != mw:
            raise FeatxError(f"{data} holds features of {fb} with weights={fw}, the classifier was fit on weights={mw}")
        bb = manifest.get("backbone")
        check_feature_settings(bb if isinstance(bb, dict) else None, recorded, what=str(data), against="the classifier")
        if names and reader.label_names != names:
            raise FeatxError(f"{data} has labels {reader.label_names}, the classifier knows {names}")
        names = names or reader.label_names
        y = reader.labels
        chunks = []
        t0 = time.perf_counter()
        for x, _ in tqdm(reader.iter_batches(batch_size), total=-(-len(reader) // batch_size), desc="predict",
                         unit="batch", disable=None if progress is None else not progress, dynamic_ncols=True):
            _check_finite(x, data, first_row=sum(len(c) for c in chunks), total=len(reader))
            chunks.append(full_proba(estimator, x, len(names)))
        secs = time.perf_counter() - t0
        rows = len(reader)
        data_timing = read_timing(reader.attrs)
    probs = np.concatenate(chunks).astype(np.float64)
    single = score(y, probs, names)
    record = make_metrics(
        method=manifest.get("method") or f"{mb or 'features'} features + LR",
        kind="transfer",
        model={"name": manifest.get("name") or type(estimator).__name__, "backbone": mb,
               "params": _params(estimator), "trainable_params": _params(estimator), "size_bytes": target.stat().st_size, "path": str(target)},
        data={"path": str(data), "rows": rows, "label_names": names},
        single_crop=_timing(single, secs, rows),
        ten_crop=None,
        train_seconds=manifest.get("train_seconds", manifest.get("fit_seconds")),
        classification_report=single["classification_report"],
        confusion_matrix=single["confusion_matrix"],
        history=None,
        warnings=list(manifest.get("warnings", [])),
        config={"batch_size": batch_size, "backbone": manifest.get("backbone")},
    )
    record["extract"] = evaluation_costs(manifest.get("extract"), data_timing)
    path = Path(out) if out else default_output(target)
    write_metrics(path, record)
    return EvalResult(record, path, single["classification_report_text"])


def _check_finite(x: np.ndarray, data, *, first_row: int, total: int) -> None:
    """One line naming the file and the first bad row when a batch of features holds NaN or inf."""
    finite = np.isfinite(x)
    if finite.all():
        return
    bad = np.flatnonzero(~finite.all(axis=1))
    kinds = " and ".join(k for k, hit in (("NaN", np.isnan(x).any()), ("infinite", np.isinf(x).any())) if hit)
    raise FeatxError(
        f"{data} holds {kinds} feature values (row {first_row + int(bad[0])} of {total} is the first, "
        f"{len(bad)} such rows in its batch): nothing can be scored on them; extract the features again"
    )


def _params(estimator) -> int | None:
    """Fitted coefficients + intercepts of a (pipeline ending in a) linear model, if any."""
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    best = getattr(final, "best_estimator_", final)
    final = best.steps[-1][1] if hasattr(best, "steps") else best
    coef = getattr(final, "coef_", None)
    if coef is None:
        return None
    return int(np.size(coef) + np.size(getattr(final, "intercept_", 0)))


# ------------------------------------------------------------------------------- dispatch
def evaluate(target, data, *, ten_crop=False, batch_size=None, out=None, progress=None) -> EvalResult:
    """Evaluate a run folder / ``.keras`` model on images, or a classifier on features."""
    t = Path(target)
    if not t.exists():
        raise FeatxError(f"{target} does not exist (a featx train run folder, a .keras model or a featx fit classifier)")
    if not Path(data).exists():
        raise FeatxError(f"{data} does not exist")
    from featx.outputs import check_not_input, check_overwritable, check_writable, output_lock

    scratch = t.is_dir() or t.suffix == ".keras"
    path = Path(out) if out else default_output(t)
    inputs = [t, data]
    if not scratch:
        from featx.fit import side_paths

        inputs.append(side_paths(t)[0])  # the classifier's manifest
    check_not_input(path, *inputs)
    check_overwritable(path)
    check_writable(path)
    with output_lock(path):
        if scratch:
            return evaluate_network(t, data, ten_crop=ten_crop, batch_size=batch_size or 64, out=path, progress=progress)
        return evaluate_classifier(t, data, ten_crop=ten_crop, batch_size=batch_size or 4096, out=path, progress=progress)

"""``featx inspect``: label issues, near-duplicates and train/test leakage, from features featx has.

:func:`inspect_features` reads top-down:

1. load every features file as a split and check they match (:mod:`featx.inspect.splits`);
2. label issues of the training split(s): out-of-fold probabilities of ``featx fit``'s model, then
   cleanlab (:mod:`featx.inspect.labels`);
3. near-duplicates within and across splits, exact, block by block (:mod:`featx.inspect.duplicates`);
   leakage: the rows of each other split with a near-duplicate in training; with a classifier, its
   accuracy on each other split with those rows removed;
4. write ``label_issues.csv``, ``duplicates.csv``, ``inspect.json`` (:mod:`featx.results.health`)
   and ``inspect.html`` (:mod:`featx.inspect.page`), each atomically.

Each finished step (the out-of-fold probabilities, each pair of splits searched) is kept in
``OUT/.inspect.partial/`` until the run finishes, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from featx import __version__
from featx.errors import FeatxError, OutputExistsError
from featx.inspect.duplicates import (
    DEFAULT_DUP_THRESHOLD,
    Pairs,
    normalize,
    resolve_engine,
    search_pairs,
)
from featx.inspect.labels import label_issues
from featx.inspect.records import (
    DUP_COLUMNS,
    LABEL_COLUMNS,
    dup_rows,
    label_rows,
    nearest_histogram,
    split_records,
    to_csv,
)
from featx.inspect.splits import Split, load_splits
from featx.results.health import INSPECT_JSON, SCHEMA

#: Files an inspect run writes into its folder.
INSPECT_FILES = ("label_issues.csv", "duplicates.csv", INSPECT_JSON, "inspect.html")
#: Items of each kind shown with thumbnails on the page.
DEFAULT_TOP = 24
PARTIAL = ".inspect.partial"


@dataclasses.dataclass
class InspectResult:
    out_dir: Path
    files: dict[str, Path]
    record: dict  # what inspect.json holds
    label_rows: list[dict]  # label_issues.csv rows
    dup_rows: list[dict]  # duplicates.csv rows

    def summary(self) -> list[str]:
        c = self.record["counts"]
        lines = [f"label issues: {c['label_issues']} of {self.record['training_rows']} training rows "
                 f"(out-of-fold LR at C={self.record['label_model']['C']:g}, {self.record['label_model']['scaler']} "
                 f"scaler, {self.record['label_model']['source']})",
                 f"near-duplicates (cosine >= {self.record['thresholds']['dup_threshold']:g}): "
                 f"{c['within-split']} within-split pairs, {c['cross-split']} cross-split pairs, "
                 f"{c['labels_differ']} with different labels ({self.record['engine']})"]
        for s in self.record["splits"]:
            if s["train"]:
                continue
            line = f"leakage: {s['rows_with_duplicate_in_train']} of {s['rows']} {s['name']} rows have a near-duplicate in training"
            acc = s.get("accuracy")
            if acc and acc.get("rank1") is not None:
                without = acc.get("rank1_without_leaked")
                line += (f"; classifier rank-1 {acc['rank1']:.4f}, without them "
                         + (f"{without:.4f} ({acc['rows_without_leaked']} rows)" if without is not None else "n/a"))
            lines.append(line)
        return lines


def inspect_features(
    features,
    out_dir: str | os.PathLike,
    *,
    classifier=None,
    images=(),
    train=None,
    dup_threshold: float = DEFAULT_DUP_THRESHOLD,
    engine: str = "auto",
    cv: int | None = None,
    seed: int | None = None,
    jobs: int | None = -1,
    top: int = DEFAULT_TOP,
    overwrite: bool = False,
    progress: bool | None = None,
    proba: dict | None = None,
) -> InspectResult:
    """``featx inspect``: inspect the features files ``features`` (one split each) into ``out_dir``.

    ``classifier``: a classifier file written by ``featx fit`` (its C, scaler, folds and seed are
    reused; each other split is scored with and without its leaked rows), or a
    :class:`featx.fit.FitResult` (``featx fit --inspect``). Without one, a quick search picks C.
    ``images``: images stores (``featx build``) holding the rows' pixels for the page's thumbnails.
    ``train``: the training splits, by name or file (default: names starting with ``train``, else the first).
    ``engine``: ``faiss``, ``numpy`` or ``auto`` (faiss when installed). ``proba``: out-of-fold
    probabilities already computed, ``{"proba": (N, C) array, "params": {...}}`` (rows in training-split order).
    """
    from featx.outputs import output_lock

    features = [features] if isinstance(features, (str, os.PathLike)) else list(features)
    images = [images] if isinstance(images, (str, os.PathLike)) else list(images or ())
    out = Path(out_dir)
    engine = resolve_engine(engine)
    if not -1.0 <= float(dup_threshold) <= 1.0:
        raise FeatxError(f"--dup-threshold is a cosine similarity in [-1, 1]. Received: {dup_threshold}")
    if cv is not None and cv < 2:
        raise FeatxError(f"--cv must be at least 2. Received: {cv}")
    if top < 0:
        raise FeatxError(f"--top must be >= 0. Received: {top}")
    clf_path = classifier if isinstance(classifier, (str, os.PathLike)) else None
    check_output(out, [*features, *images, clf_path], overwrite=overwrite)
    with output_lock(out):
        return _inspect(features, out, classifier=classifier, images=images, train=train, threshold=float(dup_threshold),
                        engine=engine, cv=cv, seed=seed, jobs=jobs, top=top, progress=progress, proba=proba)


def check_output(out_dir: str | os.PathLike, inputs, *, overwrite: bool = False) -> None:
    """Before any work: no input among the results, earlier results replaced only with
    ``overwrite``, nothing featx did not write replaced, the folder writable."""
    from featx.outputs import check_not_input, check_overwritable, check_writable, is_featx_output

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FeatxError(f"cannot write {out}: it is a file, not a folder")
    ours = is_featx_output(out / INSPECT_JSON)  # an earlier run's record: its CSV and HTML are featx's too
    for name in INSPECT_FILES:
        check_not_input(out / name, *inputs)
        if not ours:
            check_overwritable(out / name)
    if (out / INSPECT_JSON).exists() and not overwrite:
        raise OutputExistsError(f"{out / INSPECT_JSON} exists; pass --overwrite to replace the results in {out}")
    check_writable(out, folder=True)


def _classifier_params(classifier) -> tuple[dict | None, object | None, str | None, dict]:
    """``(params, estimator, path, fit config)`` of a classifier file or a FitResult (or all None)."""
    if classifier is None:
        return None, None, None, {}
    if isinstance(classifier, (str, os.PathLike)):
        from featx.fit import load_classifier

        estimator, manifest = load_classifier(classifier)
        best = (manifest.get("scores") or {}).get("best_params") or {}
        config = manifest.get("config") or {}
        path = str(Path(classifier).resolve())
        source = "classifier"
    else:  # a FitResult from featx fit --inspect
        estimator, best, config, path, source = classifier.estimator, classifier.best_params, classifier.config, None, "featx fit"
    if "C" not in best or "scaler" not in best:
        raise FeatxError(f"{classifier} does not record the C and scaler it was fitted with; refit it with featx fit")
    return {"C": float(best["C"]), "scaler": str(best["scaler"]), "source": source}, estimator, path, config


def _run_key(splits: list[Split], params, threshold, cv, seed) -> str:
    parts = [SCHEMA, repr(threshold), repr(cv), repr(seed), json.dumps(params, sort_keys=True, default=str)]
    for s in splits:
        st = s.path.stat()
        parts += [s.name, str(s.path.resolve()), str(st.st_size), str(st.st_mtime_ns), str(s.train)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


class _Steps:
    """Finished steps of a run, kept in ``OUT/.inspect.partial/<key>/`` (npz, written atomically)."""

    def __init__(self, out: Path, key: str):
        self.root = out / PARTIAL
        self.dir = self.root / key
        if self.root.is_dir():  # steps of runs with other inputs or settings are stale
            for old in self.root.iterdir():
                if old.name != key:
                    shutil.rmtree(old, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def load(self, name: str) -> dict | None:
        p = self.dir / f"{name}.npz"
        if not p.is_file():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None

    def save(self, name: str, **arrays) -> None:
        from featx.utils import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.dir / f"{name}.npz", buf.getvalue())

    def done(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _inspect(paths, out: Path, *, classifier, images, train, threshold, engine, cv, seed, jobs, top, progress, proba):
    from featx.fit import DEFAULT_CV

    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    splits = load_splits(paths, train=train)
    params, estimator, clf_path, fit_config = _classifier_params(classifier)
    cv = cv or int(fit_config.get("cv") or DEFAULT_CV)
    seed = seed if seed is not None else int(fit_config.get("seed") or 42)
    names = splits[0].label_names
    if estimator is not None:
        _check_classifier(estimator, names, splits[0].X.shape[1], classifier)
    timing["load"] = time.perf_counter() - t0

    trains = [s for s in splits if s.train]
    Xtr = trains[0].X if len(trains) == 1 else np.concatenate([s.X for s in trains])
    ytr = trains[0].y if len(trains) == 1 else np.concatenate([s.y for s in trains])
    steps = _Steps(out, _run_key(splits, params, threshold, cv, seed))

    # ---- 2. label issues
    given = None
    if proba is not None:
        given = np.asarray(proba["proba"])
        params = {**(params or {}), **proba.get("params", {})}
        if given.shape != (len(ytr), len(names)):
            raise FeatxError(f"out-of-fold probabilities have shape {given.shape}, expected {(len(ytr), len(names))}")
    else:
        kept = steps.load("out_of_fold")
        if kept is not None and kept["proba"].shape == (len(ytr), len(names)):
            given = kept["proba"]
            params = json.loads(str(kept["params"]))
    issues = label_issues(Xtr, ytr, names, params=params, cv=cv, seed=seed, jobs=jobs, proba=given)
    if given is None:
        steps.save("out_of_fold", proba=issues.proba, params=np.array(json.dumps(issues.params)))
    timing.update({f"label_{k}": v for k, v in issues.seconds.items()})

    # ---- 3. near-duplicates and leakage
    t0 = time.perf_counter()
    normed = {s.name: normalize(s.X) for s in splits}
    results: dict[tuple[str, str], Pairs] = {}
    plan = _search_plan(splits)
    bar = _bar(sum(len(q) for q, _ in plan), progress)
    for q, base in plan:
        key = f"pairs-{splits.index(q)}-{splits.index(base)}"
        kept = steps.load(key)
        if kept is not None:
            results[(q.name, base.name)] = Pairs(**kept)
            bar.update(len(q))
            continue
        p = search_pairs(normed[q.name], None if q is base else normed[base.name], threshold=threshold, engine=engine,
                         on_block=bar.update)
        steps.save(key, **dataclasses.asdict(p))
        results[(q.name, base.name)] = p
    bar.close()
    timing["duplicates"] = time.perf_counter() - t0

    labels = label_rows(issues, trains, names)
    dups = dup_rows(results, splits, names)
    per_split = split_records(splits, results, issues, trains, estimator, clf_path)
    nearest = nearest_histogram(splits, results)
    counts = {
        "label_issues": len(labels),
        "within-split": sum(r["kind"] == "within-split" for r in dups),
        "cross-split": sum(r["kind"] == "cross-split" for r in dups),
        "labels_differ": sum(r["labels_differ"] for r in dups),
    }
    record = {
        "schema": SCHEMA,
        "featx_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "splits": per_split,
        "training_rows": int(len(ytr)),
        "counts": counts,
        "thresholds": {"dup_threshold": threshold},
        "engine": engine,
        "label_model": {k: v for k, v in issues.params.items() if k in ("C", "scaler", "source", "cv", "seed", "cv_score")},
        "nearest": nearest,
        "label_names": names,
        "backbone": splits[0].backbone,
        "files": {name: name for name in INSPECT_FILES},
        "config": {"features": [str(s.path.resolve()) for s in splits], "classifier": clf_path,
                   "images": [str(Path(p).resolve()) for p in images], "train": [s.name for s in trains],
                   "dup_threshold": threshold, "engine": engine, "cv": cv, "seed": seed, "top": top},
    }
    files = _write(out, record, labels, dups, splits, images, top, timing, t_start)
    steps.done()
    return InspectResult(out, files, record, labels, dups)


def _search_plan(splits: list[Split]) -> list[tuple[Split, Split]]:
    """``(query, searched)`` split pairs: each split against itself, and each pair of splits once,
    the non-training split as the query (its rows' nearest training rows are the leakage)."""
    plan = [(s, s) for s in splits]
    for k, a in enumerate(splits):
        for b in splits[k + 1 :]:
            plan.append((b, a) if a.train and not b.train else (a, b))
    return plan


def _check_classifier(estimator, names, dim, what) -> None:
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and int(n_in) != int(dim):
        raise FeatxError(f"{what} was fitted on {n_in}-d features; these features are {dim}-d: use the classifier of this extraction")
    classes = getattr(estimator, "classes_", None)
    if classes is not None and len(classes) and int(np.max(classes)) >= len(names):
        raise FeatxError(f"{what} predicts {int(np.max(classes)) + 1} classes; these features have {len(names)}")


def _bar(total: int, progress: bool | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="near-duplicates", unit="row", dynamic_ncols=True,
                disable=(not progress) if progress is not None else None, leave=False)


def _write(out: Path, record, labels, dups, splits, images, top, timing, t_start) -> dict[str, Path]:
    from featx.inspect.page import render_inspect
    from featx.utils import atomic_write_json, atomic_write_text

    files = {
        "label_issues": atomic_write_text(out / "label_issues.csv", to_csv(labels, LABEL_COLUMNS)),
        "duplicates": atomic_write_text(out / "duplicates.csv", to_csv(dups, DUP_COLUMNS)),
    }
    t0 = time.perf_counter()
    page = render_inspect(record, labels, dups, splits, images=images, top=top)
    files["html"] = atomic_write_text(out / "inspect.html", page)
    timing["html"] = time.perf_counter() - t0
    timing["total"] = time.perf_counter() - t_start
    record["timing"] = {"seconds": {k: round(v, 3) for k, v in timing.items()}}
    files["json"] = atomic_write_json(out / INSPECT_JSON, record)  # last: its presence means a finished run
    return files

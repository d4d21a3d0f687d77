"""Benchmark ``featx fit`` against the book's grid search on the same features; prints JSON.

The book (Deep Learning for Computer Vision, Practitioner Bundle, ch. 3)::

    GridSearchCV(LogisticRegression(), {"C": [1e-4, 1e-3, 1e-2, 0.1, 1.0]}, cv=3)   # raw features

featx: ``fit_classifier`` (scaler chosen by CV + lbfgs, C in 1e-4..1e2, parallel folds). Both see
the same train/test split of deterministic synthetic features (no network here):

* ``digits``: 28x28 pixel features (784-d, 10 classes) made from scikit-learn's 8x8 digits,
  upscaled, shifted by up to 1 px and noised -- the "12,000 x 784" case;
* ``cnnlike``: 2048-d, 2 classes, non-negative (ReLU of class-conditional Gaussians) with
  per-feature scales spread over a decade -- a stand-in for ResNet50 features of Dogs vs Cats.

Usage: ``python scripts/bench_fit.py [--data digits,cnnlike] [--n-digits 12000] [--n-cnnlike 8000]``
Target: featx accuracy >= book accuracy, featx time < book time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BOOK_GRID = [1e-4, 1e-3, 1e-2, 0.1, 1.0]


def digits_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import cv2
    from sklearn.datasets import load_digits

    dg = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(dg.images), n)
    X = np.empty((n, 784), np.float32)
    for k, i in enumerate(idx):
        im = cv2.resize(dg.images[i].astype(np.float32) * 16, (20, 20), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((28, 28), np.float32)
        dy, dx = 4 + rng.integers(-1, 2, 2)
        canvas[dy : dy + 20, dx : dx + 20] = im
        canvas += rng.normal(0, 20, canvas.shape)
        X[k] = np.clip(canvas, 0, 255).ravel()
    return X, dg.target[idx].astype(np.int64)


def cnnlike_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=n, n_features=2048, n_informative=100, n_redundant=100, n_classes=2,
        n_clusters_per_class=2, class_sep=1.0, random_state=seed,
    )
    rng = np.random.default_rng(seed)
    X = np.maximum(X + rng.normal(0, 0.5, X.shape[1]), 0) * 10 ** rng.uniform(-0.5, 0.5, X.shape[1])
    return X.astype(np.float32), y.astype(np.int64)


def run_book(Xtr, ytr, Xte, yte) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        search = GridSearchCV(LogisticRegression(), {"C": BOOK_GRID}, cv=3).fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "accuracy": round(float(search.score(Xte, yte)), 4),
        "best_C": float(search.best_params_["C"]),
        "convergence_warnings": sum(issubclass(w.category, ConvergenceWarning) for w in caught),
        "fits": len(BOOK_GRID) * 3 + 1,
    }


def run_featx(Xtr, ytr, Xte, yte, names, jobs, tol) -> dict:
    from featx.classify import fit_classifier, fit_features
    from featx.store import StoreWriter

    r = fit_classifier(Xtr, ytr, label_names=names, X_test=Xte, y_test=yte, jobs=jobs, tol=tol)
    out = {
        "seconds": round(r.fit_seconds, 2),
        "accuracy": round(r.scores["rank1"], 4),
        "best": r.best_params,
        "convergence_warnings": len(r.warnings),
        "fits": len(r.cv_results) * r.config["cv"] + 1,
        "jobs": jobs,
        "tol": tol,
    }
    # end to end as `featx fit` runs it: read the features file, fit, score, export
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for split, (X, y) in {"train": (Xtr, ytr), "test": (Xte, yte)}.items():
            w = StoreWriter(Path(tmp) / f"{split}.h5", kind="features", row_shape=(X.shape[1],), dtype=np.float32,
                            paths=[str(i) for i in range(len(X))], labels=y, label_names=names, config={"split": split})
            with w:
                w.add_batch(0, X)
                w.finish()
            files[split] = w.path
        t0 = time.perf_counter()
        fit_features(files["train"], Path(tmp) / "clf.pkl", test=files["test"], jobs=jobs, tol=tol)
        out["end_to_end_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def bench(name: str, X: np.ndarray, y: np.ndarray, jobs: int, tol: float, book: bool = True) -> dict:
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=42)
    names = [str(c) for c in range(int(y.max()) + 1)]
    featx = run_featx(Xtr, ytr, Xte, yte, names, jobs, tol)
    features = {"name": name, "rows": len(X), "dim": X.shape[1], "classes": len(names), "train": len(Xtr), "test": len(Xte)}
    if not book:
        return {"features": features, "featx": featx}
    book = run_book(Xtr, ytr, Xte, yte)
    return {
        "features": features,
        "featx": featx,
        "book": book,
        "speedup_book_over_featx": round(book["seconds"] / featx["seconds"], 2),
        "accuracy_featx_minus_book": round(featx["accuracy"] - book["accuracy"], 4),
        "targets_met": {"accuracy_no_lower": featx["accuracy"] >= book["accuracy"],
                        "time_lower": featx["seconds"] < book["seconds"]},
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="digits,cnnlike", help="comma-separated: digits, cnnlike")
    ap.add_argument("--n-digits", type=int, default=12000, help="rows of the 784-d digits features")
    ap.add_argument("--n-cnnlike", type=int, default=8000, help="rows of the 2048-d CNN-like features")
    ap.add_argument("--jobs", type=int, default=-1, help="featx fit --jobs")
    ap.add_argument("--tol", type=float, default=1e-3, help="featx fit --tol")
    ap.add_argument("--no-book", action="store_true", help="time featx only")
    args = ap.parse_args(argv)
    makers = {"digits": lambda: digits_features(args.n_digits), "cnnlike": lambda: cnnlike_features(args.n_cnnlike)}
    report = {
        "bench": "featx fit vs the book's GridSearchCV(LogisticRegression(), C in 1e-4..1, cv=3)",
        "machine": {"cpus": os.cpu_count(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2)},
        "runs": [],
    }
    for name in args.data.split(","):
        X, y = makers[name]()
        report["runs"].append(bench(name, X, y, args.jobs, args.tol, book=not args.no_book))
        print(f"[bench_fit] {name} done", file=sys.stderr, flush=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()

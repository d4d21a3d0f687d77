"""Benchmark ``featx inspect``'s two heavy steps; prints one JSON object.

1. The exact near-duplicate search (:func:`featx.inspect.search_pairs`), faiss vs NumPy, on
   ``N x D`` float32 features searched against themselves (the within-split search, the largest
   one a run makes): seconds and peak memory. Each measurement runs in a fresh process, so peak
   RSS (``ru_maxrss``) is that engine's alone; ``data_mib`` is the features themselves.
   ``--query-rows`` bounds the queries at large N (every query still searches all N rows); the
   full search's time is then extrapolated linearly (``full_seconds_est``: the work is
   queries x N x D, block by block, so it scales linearly in the queries) and said so.
2. The label step: out-of-fold probabilities (3-fold ``cross_val_predict`` of fit's scaler + LR at
   a fixed C) and ``cleanlab.filter.find_label_issues`` on them.

The features are Gaussian blobs with planted near-copies (1% of the rows), so both engines have
pairs to find; the pairs found are compared (``same_pairs``).

    python3 scripts/bench_inspect.py --sizes 10000,100000 --query-rows 0,10000 --dim 2048
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def make_features(n: int, dim: int, classes: int = 10, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (classes, dim)).astype(np.float32)
    y = rng.integers(0, classes, n)
    X = np.empty((n, dim), np.float32)
    for a in range(0, n, 8192):  # in slabs: no float64 temporary of the whole matrix
        b = min(a + 8192, n)
        X[a:b] = centers[y[a:b]] + rng.standard_normal((b - a, dim), dtype=np.float32) * 1.5
    copies = rng.choice(n, max(1, n // 100), replace=False)
    src = rng.choice(n, len(copies), replace=True)
    X[copies] = X[src] + rng.standard_normal((len(copies), dim), dtype=np.float32) * 0.05
    return X, y


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakRSS:
    """Peak resident memory of this process while the block runs (psutil, sampled every 10 ms)."""

    def __enter__(self):
        import threading

        import psutil

        self._proc = psutil.Process()
        self.before = self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def child_search(n: int, dim: int, engine: str, query_rows: int, threshold: float) -> dict:
    import numpy as np

    from featx.inspect import normalize, search_pairs

    X, _ = make_features(n, dim)
    Z = normalize(X)
    del X
    Q = Z[:query_rows] if query_rows and query_rows < n else Z
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        if Q is Z:
            p = search_pairs(Z, threshold=threshold, engine=engine)
        else:  # the first query_rows rows against all n, each row excluded from its own matches
            p = _bounded(Z, Q, threshold, engine, search_pairs)
        secs = time.perf_counter() - t0
    import hashlib

    digest = hashlib.sha256(p.i.tobytes() + p.j.tobytes() + np.round(p.similarity, 9).tobytes()).hexdigest()[:16]
    return {"engine": engine, "rows": n, "dim": dim, "query_rows": len(Q), "seconds": round(secs, 2),
            "full_seconds_est": round(secs * n / len(Q), 1), "pairs": len(p),
            "rss_before_search_mib": round(mem.before / 2**20, 1),
            "search_peak_extra_mib": round((mem.peak - mem.before) / 2**20, 1),
            "data_mib": round(Z.nbytes / 2**20, 1), "pairs_digest": digest}


def _bounded(Z, Q, threshold, engine, search_pairs):
    p = search_pairs(Q, Z, threshold=threshold, engine=engine)
    keep = p.i != p.j
    p.i, p.j, p.similarity = p.i[keep], p.j[keep], p.similarity[keep]
    return p


def child_labels(n: int, dim: int, classes: int, C: float) -> dict:
    from featx.inspect.labels import find_issues, out_of_fold_proba

    X, y = make_features(n, dim, classes=classes)
    rng = __import__("numpy").random.default_rng(1)
    flip = rng.choice(n, n // 20, replace=False)
    y = y.copy()
    y[flip] = (y[flip] + 1) % classes
    t0 = time.perf_counter()
    proba = out_of_fold_proba(X, y, classes, C=C, scaler="standard", cv=3, seed=0, jobs=-1)
    t1 = time.perf_counter()
    ranked, _ = find_issues(y, proba)
    t2 = time.perf_counter()
    top = set(ranked[: len(flip)].tolist())
    return {"rows": n, "dim": dim, "classes": classes, "C": C, "out_of_fold_seconds": round(t1 - t0, 2),
            "cleanlab_seconds": round(t2 - t1, 2), "flagged": len(ranked), "flipped": len(flip),
            "precision_at_flipped": round(len(top & set(flip.tolist())) / len(flip), 3),
            "peak_rss_mib": round(_rss_mib(), 1)}


def run_child(*args) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1], "args": list(map(str, args))}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000", help="rows of the duplicate search")
    ap.add_argument("--query-rows", default="0,10000", help="queries per size (0: all rows), one per size")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--engines", default="faiss,numpy")
    ap.add_argument("--label-rows", type=int, default=10000)
    ap.add_argument("--label-dim", type=int, default=2048)
    ap.add_argument("--label-classes", type=int, default=10)
    ap.add_argument("--label-C", type=float, default=0.01)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        kind, *rest = a.child
        if kind == "search":
            n, dim, engine, q, thr = rest
            res = child_search(int(n), int(dim), engine, int(q), float(thr))
        else:
            n, dim, classes, C = rest
            res = child_labels(int(n), int(dim), int(classes), float(C))
        print(json.dumps(res))
        return
    import joblib

    sizes = [int(s) for s in a.sizes.split(",") if s]
    queries = [int(q) for q in a.query_rows.split(",")] + [0] * len(sizes)
    search = []
    for n, q in zip(sizes, queries):
        row = {"rows": n, "dim": a.dim}
        for engine in a.engines.split(","):
            row[engine] = run_child("search", n, a.dim, engine, q, a.threshold)
        digests = {r.get("pairs_digest") for k, r in row.items() if isinstance(r, dict)}
        row["same_pairs"] = len(digests) == 1 and None not in digests
        if "faiss" in row and "numpy" in row and "seconds" in row["faiss"] and "seconds" in row["numpy"]:
            row["numpy_over_faiss_seconds"] = round(row["numpy"]["seconds"] / max(row["faiss"]["seconds"], 1e-9), 2)
        search.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    labels = run_child("labels", a.label_rows, a.label_dim, a.label_classes, a.label_C) if a.label_rows else None
    print(json.dumps({"bench": "inspect", "cores": joblib.cpu_count(), "load_avg": os.getloadavg(),
                      "threshold": a.threshold, "duplicate_search": search, "label_step": labels}, indent=1))


if __name__ == "__main__":
    main()

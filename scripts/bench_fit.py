"""Benchmark ``featx fit`` against the book's grid search on the same features; prints JSON.

The book (Deep Learning for Computer Vision, Practitioner Bundle, ch. 3), on the raw features::

    GridSearchCV(LogisticRegression(), {"C": [0.0001, 0.001, 0.01, 0.1, 1.0]}, cv=3, n_jobs=-1)

featx: ``fit_classifier`` with its defaults (scaler chosen by CV, C path 1e-4..1e2 in 13 steps,
warm-started per fold, successive halving over rows from 6,000 rows, folds in parallel). Both see the same stratified 75/25 split and are scored
on the same held-out rows; wall seconds and CPU seconds (this process and its workers) are
measured side by side in one run. No network here, so the features are made locally
(deterministic, documented):

* ``digits784`` (12,000 x 784, 10 classes): scikit-learn's 8x8 digits upsampled to 20x20
  (bilinear), pasted into a 28x28 canvas shifted by up to 1 px, plus Gaussian pixel noise
  (sigma 20 on 0..255), clipped: MNIST-like pixel features.
* ``randcnn2048`` (25,000 x 2,048, 10 classes): the same jittered digits through a *random-init*
  CNN (3x3 conv, 16 filters, ReLU, 2x2 average pool, then a dense 3136 -> 2048 layer with ReLU;
  Gaussian weights, fixed seed): non-negative, half-sparse, correlated 2048-d features with dead
  units, shaped like pooled CNN features. They are NOT ImageNet features (ResNet50 runs at
  ~13 img/s on this machine, so 25k real images would take over half an hour).
* ``fashioncnn_heldout2048`` (20,000 x 2,048, 10 classes): the held-out check of issue 20 part 1,
  run only at the end, after the search's settings were chosen on the other sets: another seeded
  draw of Fashion-MNIST rows through a random CNN with other weights (seed 5678).
* ``fashion_t10k_heldout2048`` (10,000 x 2,048) and ``fashion_hog_heldout1764`` (20,000 x
  1,764): held out in session 4, run only after its changes were chosen: Fashion-MNIST's test
  images through a random CNN with other weights, and HOG descriptors of other training images.
* ``scale100k`` (100,000 x 2,048, featx alone): the randcnn features of 100,000 digits, written
  to an HDF5 features file; ``featx fit`` runs on the file in a fresh process (reading included),
  whose peak RSS is reported against the feature bytes (target <= 3x).

* ``--ooc`` (out of core, issue 20 part 3): ``--ooc-rows`` (default 60,000) x 2,048 CNN-like
  features (the random CNN's features of Fashion-MNIST when Debian's dataset-fashion-mnist is
  installed and has that many images (60,000); past that, of the overlapping classes of
  ``overlap2048``, as hard; without it, of the jittered digits), split 75/25 (stratified, seed 42) into a train and a
  test file; then, each in a fresh process on the same two files: ``featx fit --solver lbfgs``
  (in memory), ``featx fit --solver sgd`` (softmax heads, Adam, streamed slabs) and the previous
  out-of-core fit (one ``SGDClassifier(log_loss)`` per C x scaler, ``partial_fit`` over
  concatenated slabs, 5 epochs: :func:`legacy_sgd`, kept here to measure against). Seconds, peak
  RSS (the child's VmHWM: ru_maxrss would include this script's memory at fork), accuracy on the test file, and the ratios.

Usage: ``python scripts/bench_fit.py [--sets digits784,randcnn2048,scale100k] [--ooc --ooc-rows 60000]``
Targets: featx >= 3x faster than the book (aim 10x) at accuracy >= book - 0.2 points per set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOOK_GRID = [1e-4, 1e-3, 1e-2, 0.1, 1.0]


def _jittered_digits(n: int, rng: np.random.Generator, *, shift: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits upsampled to 20x20, pasted into 28x28 shifted by up to ``shift`` px,
    plus Gaussian pixel noise of ``sigma`` (0..255), clipped."""
    import cv2
    from sklearn.datasets import load_digits

    dg = load_digits()
    idx = rng.integers(0, len(dg.images), n)
    X = np.empty((n, 784), np.float32)
    for k, i in enumerate(idx):
        im = cv2.resize(dg.images[i].astype(np.float32) * 16, (20, 20), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((28, 28), np.float32)
        dy, dx = 4 + rng.integers(-shift, shift + 1, 2)
        canvas[dy : dy + 20, dx : dx + 20] = im
        canvas += rng.normal(0, sigma, canvas.shape)
        X[k] = np.clip(canvas, 0, 255).ravel()
    return X, dg.target[idx].astype(np.int64)


def digits_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``digits784``: the jittered digits (shifts up to 1 px, pixel noise sigma 20)."""
    return _jittered_digits(n, np.random.default_rng(seed), shift=1, sigma=20)


def hard_digits_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``digits_noisy784``: the jittered digits made hard: heavy pixel noise (sigma 80), shifts up to
    2 px, and 15% of the labels replaced by a random other class (label noise no model can learn)."""
    rng = np.random.default_rng(seed + 100)
    X, y = _jittered_digits(n, rng, shift=2, sigma=80)
    flip = rng.random(n) < 0.15
    y[flip] = (y[flip] + rng.integers(1, 10, int(flip.sum()))) % 10
    return X, y


def overlap_pixels(n: int, seed: int = 0, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images of overlapping classes: each class is a smooth template (4 Gaussian blobs, fixed
    seed); an image is its class's template blended with another class's at a weight drawn from
    U(0, 0.6) (past 0.5 the other class dominates: irreducible error), shifted by up to 2 px, plus
    pixel noise. Values in 0..255 like the digits."""
    trng = np.random.default_rng(99)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    T = np.zeros((classes, 32, 32), np.float32)
    for c in range(classes):
        for _ in range(4):
            cy, cx = trng.uniform(8, 24, 2)
            s = trng.uniform(2.5, 5.0)
            T[c] += trng.uniform(0.4, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    rng = np.random.default_rng(seed + 200)
    y = rng.integers(0, classes, n)
    other = (y + rng.integers(1, classes, n)) % classes
    a = rng.uniform(0, 0.6, n).astype(np.float32)[:, None, None]
    mixed = (1 - a) * T[y] + a * T[other]
    X = np.empty((n, 784), np.float32)
    shifts = rng.integers(0, 5, (n, 2))
    for k in range(n):
        dy, dx = shifts[k]
        X[k] = mixed[k, dy : dy + 28, dx : dx + 28].ravel()
    X = np.clip(X * 160 + rng.normal(0, 25, X.shape).astype(np.float32), 0, 255)
    return X, y.astype(np.int64)


def random_cnn(pixels: np.ndarray, weights_seed: int = 1234) -> np.ndarray:
    """The fixed random-init CNN (see the module docstring): (N, 784) pixels -> (N, 2048) features."""
    from numpy.lib.stride_tricks import sliding_window_view

    n = len(pixels)
    rng = np.random.default_rng(weights_seed)  # the network's weights: the same for every set but the held-out one
    w1 = rng.normal(0, 1 / 3, (9, 16)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 16).astype(np.float32)
    w2 = (rng.normal(0, 1, (3136, 2048)) / np.sqrt(3136)).astype(np.float32)
    b2 = rng.normal(0, 0.05, 2048).astype(np.float32)
    out = np.empty((n, 2048), np.float32)
    for a in range(0, n, 2000):
        im = pixels[a : a + 2000].reshape(-1, 28, 28) / 255.0
        patches = sliding_window_view(np.pad(im, ((0, 0), (1, 1), (1, 1))), (3, 3), axis=(1, 2)).reshape(len(im), 28, 28, 9)
        h = np.maximum(patches @ w1 + b1, 0).reshape(len(im), 14, 2, 14, 2, 16).mean(axis=(2, 4))
        out[a : a + 2000] = np.maximum(h.reshape(len(im), -1) @ w2 + b2, 0)
    return out


def overlap_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``overlap2048``: the random CNN's features of :func:`overlap_pixels`."""
    pixels, y = overlap_pixels(n, seed)
    return random_cnn(pixels), y


def many_class_features(n: int, seed: int = 0, classes: int = 100, dim: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """``many100``: 100 overlapping classes. Class centres in a 32-d latent space (N(0, 1)), rows
    drawn around them with noise sigma 1.6 (neighbouring classes overlap), then a fixed random ReLU
    layer 32 -> 512: non-negative, correlated features, as pooled CNN features are."""
    rng = np.random.default_rng(seed + 300)
    wrng = np.random.default_rng(4321)
    centres = wrng.normal(0, 1, (classes, 32)).astype(np.float32)
    W = (wrng.normal(0, 1, (32, dim)) / np.sqrt(32)).astype(np.float32)
    b = wrng.normal(0, 0.5, dim).astype(np.float32)
    y = rng.integers(0, classes, n)
    z = centres[y] + rng.normal(0, 1.6, (n, 32)).astype(np.float32)
    return np.maximum(z @ W + b, 0).astype(np.float32), y.astype(np.int64)


#: Fashion-MNIST as Debian ships it (``apt-get install dataset-fashion-mnist``): real images none
#: of featx's settings were chosen on. Sets that need it are skipped (and say so) without it.
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def fashion_pixels(n: int, seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of Fashion-MNIST's ``train`` (60,000) or ``t10k`` (10,000) images (784 raw pixels,
    0..255), a seeded draw."""
    import gzip

    if not (FASHION_DIR / f"{split}-images-idx3-ubyte.gz").exists():
        raise FileNotFoundError(f"{FASHION_DIR} not found: apt-get install dataset-fashion-mnist")
    with gzip.open(FASHION_DIR / f"{split}-images-idx3-ubyte.gz") as f:
        X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(FASHION_DIR / f"{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    if n > len(y):  # a smaller draw labelled as n rows would misreport the benchmark
        raise ValueError(f"Fashion-MNIST has {len(y)} {split} images, not {n}")
    idx = np.sort(np.random.default_rng(seed + 400).permutation(len(y))[:n])
    return X[idx].astype(np.float32), y[idx]


def fashion_cnn_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashioncnn2048``: the random CNN's features of :func:`fashion_pixels`."""
    pixels, y = fashion_pixels(n, seed)
    return random_cnn(pixels), y


def fashion_cnn_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashioncnn_heldout2048``: the held-out check of issue 20 part 1, run only after the search
    was tuned on the other sets: another seeded draw of Fashion-MNIST rows (20,000 by default),
    through a random CNN with other weights (seed 5678)."""
    pixels, y = fashion_pixels(n, seed + 7)
    return random_cnn(pixels, weights_seed=5678), y


def fashion_t10k_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_t10k_heldout2048`` (held out, session 4): Fashion-MNIST's 10,000 *test* images (no
    other set draws from them) through the random CNN with yet other weights (seed 9012)."""
    pixels, y = fashion_pixels(n, seed, split="t10k")
    return random_cnn(pixels, weights_seed=9012), y


def hog_features(images: np.ndarray, cell: int = 7, bins: int = 9) -> np.ndarray:
    """HOG descriptors (Dalal and Triggs) of ``(N, H, W)`` gray images, in NumPy (OpenCV 5 has no
    ``HOGDescriptor``): central-difference gradients, unsigned orientations in ``bins`` bins per
    ``cell`` x ``cell`` cell (votes by magnitude, no interpolation), blocks of 2 x 2 cells at a
    one-cell stride, each L2-Hys normalised (clipped at 0.2)."""
    x = images.astype(np.float32)
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    gy[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    mag = np.hypot(gx, gy)
    b = np.minimum((np.mod(np.arctan2(gy, gx), np.pi) / np.pi * bins).astype(np.int64), bins - 1)
    n, h, w = x.shape
    ch, cw = h // cell, w // cell
    cells = np.zeros((n, ch, cw, bins), np.float32)
    for k in range(bins):  # per bin: the magnitudes voting for it, summed over each cell
        m = np.where(b == k, mag, 0)[:, : ch * cell, : cw * cell]
        cells[..., k] = m.reshape(n, ch, cell, cw, cell).sum(axis=(2, 4))
    blocks = np.concatenate([cells[:, i : ch - 1 + i, j : cw - 1 + j] for i in (0, 1) for j in (0, 1)], axis=-1)
    blocks /= np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-6
    np.minimum(blocks, 0.2, out=blocks)
    blocks /= np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-6
    return blocks.reshape(n, -1)


def fashion_hog_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_hog_heldout1764`` (held out, session 4): another kind of feature. HOG descriptors
    (:func:`hog_features`: 9 orientations, 7 px cells, 2 x 2-cell blocks) of 20,000 Fashion-MNIST
    training images (another seeded draw) upsampled to 56 x 56: 1,764 dense, non-negative,
    block-normalised values per image."""
    import cv2

    pixels, y = fashion_pixels(n, seed + 13)
    out = np.empty((n, 1764), np.float32)
    for a in range(0, n, 2000):
        big = np.stack([cv2.resize(im, (56, 56), interpolation=cv2.INTER_LINEAR)
                        for im in pixels[a : a + 2000].reshape(-1, 28, 28)])
        out[a : a + 2000] = hog_features(big)
    return out, y


def patch_features(images: np.ndarray, filters: int = 256, size: int = 6, alpha: float = 0.5, seed: int = 0) -> np.ndarray:
    """Coates and Ng's single-layer features (AISTATS 2011) of ``(N, H, W)`` gray images: ``filters``
    normalised ``size`` x ``size`` patches drawn from the images themselves as the dictionary, every
    normalised patch of an image encoded as ``max(0, D x - alpha)``, sum-pooled over the image's four
    quadrants: ``4 * filters`` non-negative, sparse values per image."""
    from numpy.lib.stride_tricks import sliding_window_view

    rng = np.random.default_rng(seed)
    x = images.astype(np.float32)

    def norm(p):  # per patch: zero mean, unit norm (the +10 damps flat patches, as in the paper)
        p = p - p.mean(axis=-1, keepdims=True)
        return p / np.sqrt((p * p).sum(axis=-1, keepdims=True) + 10.0)

    n, h, w = x.shape
    pick = rng.integers(0, n, filters), rng.integers(0, h - size + 1, filters), rng.integers(0, w - size + 1, filters)
    D = norm(np.stack([x[i, a : a + size, b : b + size].ravel() for i, a, b in zip(*pick)]))
    out = np.empty((n, 4 * filters), np.float32)
    gh, gw = h - size + 1, w - size + 1
    for a in range(0, n, 500):
        P = norm(sliding_window_view(x[a : a + 500], (size, size), axis=(1, 2)).reshape(-1, gh, gw, size * size))
        z = np.maximum(P @ D.T - alpha, 0)  # (m, gh, gw, filters)
        q = [z[:, : gh // 2, : gw // 2], z[:, : gh // 2, gw // 2 :], z[:, gh // 2 :, : gw // 2], z[:, gh // 2 :, gw // 2 :]]
        out[a : a + 500] = np.concatenate([t.sum(axis=(1, 2)) for t in q], axis=1)
    return out


def fashion_patches_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_patches_heldout1024`` (held out, session 5): a third kind of feature. Coates and
    Ng's random-patch features (:func:`patch_features`: 256 patches of 6 x 6 px, four quadrants) of
    20,000 Fashion-MNIST training images (another seeded draw): 1,024 sparse non-negative values."""
    pixels, y = fashion_pixels(n, seed + 29)
    return patch_features(pixels.reshape(-1, 28, 28), seed=seed + 31), y


def fashion_two_classes(n: int, seed: int, negative: int, positive: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` Fashion-MNIST training images of two classes in the seeded order ``seed``,
    as pixels, and their labels (1 for ``positive``)."""
    pixels, y = fashion_pixels(60000, seed)
    keep = np.flatnonzero((y == negative) | (y == positive))[:n]
    if len(keep) < n:
        raise ValueError(f"Fashion-MNIST has {len(keep)} images of classes {negative} and {positive}, not {n}")
    return pixels[keep], (y[keep] == positive).astype(np.int64)


def fashion_shirts_binary(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_shirts_binary2048`` (session 5, after its final run): the first **binary** set.
    Fashion-MNIST's two closest classes, T-shirt/top (0) and shirt (6), the first ``n`` of them in
    a seeded order of the training images, through a random CNN with other weights (seed 77)."""
    pixels, y = fashion_two_classes(n, seed + 3, 0, 6)
    return random_cnn(pixels, weights_seed=77), y


def fashion_coats_binary_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_coats_binary_heldout2048`` (held out, session 6): two classes again. Pullovers (2)
    against coats (4), the first ``n`` of them in another seeded order of the training images,
    through the random CNN with other weights (seed 91)."""
    pixels, y = fashion_two_classes(n, seed + 37, 2, 4)
    return random_cnn(pixels, weights_seed=91), y


def fashion_hog_binary_heldout(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``fashion_hog_binary_heldout1764`` (held out, session 6): coats (4) against shirts (6), HOG
    descriptors as ``fashion_hog_heldout1764`` (56 x 56 px, 1,764 values), another seeded order."""
    import cv2

    pixels, y = fashion_two_classes(n, seed + 41, 4, 6)
    big = np.stack([cv2.resize(im, (56, 56), interpolation=cv2.INTER_LINEAR) for im in pixels.reshape(-1, 28, 28)])
    return hog_features(big), y


def randcnn_features(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random-init CNN features (2048-d) of ``n`` jittered digits (see the module docstring)."""
    pixels, y = digits_features(n, seed)
    return random_cnn(pixels), y


class Clock:
    """Wall and CPU seconds of this process and its (joblib/loky) worker processes."""

    def __enter__(self):
        self.t0, self.c0 = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        end = self._cpu()
        # per process: workers started during the run count from 0; each process counted while alive
        self.cpu = sum(v - self.c0.get(pid, 0.0) for pid, v in end.items())
        if exc[0] is None:
            from joblib.externals.loky import get_reusable_executor

            get_reusable_executor().shutdown(wait=True)  # idle workers would not be counted in the next run

    @staticmethod
    def _cpu() -> dict:
        import psutil

        me = psutil.Process()
        out = {me.pid: sum(me.cpu_times()[:2])}
        for child in me.children(recursive=True):
            try:
                out[child.pid] = sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return out


def run_book(Xtr, ytr, Xte, yte) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    with Clock() as clock:  # (its lbfgs fits stop at max_iter=100 on the raw features: warnings in workers)
        search = GridSearchCV(LogisticRegression(), {"C": BOOK_GRID}, cv=3, n_jobs=-1).fit(Xtr, ytr)
    return {
        "seconds": round(clock.wall, 2),
        "cpu_seconds": round(clock.cpu, 2),
        "accuracy": round(float(search.score(Xte, yte)), 4),
        "best_C": float(search.best_params_["C"]),
        "fits": len(BOOK_GRID) * 3 + 1,
    }


def run_featx(Xtr, ytr, Xte, yte, names) -> dict:
    from featx.fit import fit_classifier

    with Clock() as clock:
        r = fit_classifier(Xtr, ytr, label_names=names, X_test=Xte, y_test=yte, copy=False)
    return {
        "seconds": round(clock.wall, 2),
        "cpu_seconds": round(clock.cpu, 2),
        "accuracy": round(r.scores["rank1"], 4),
        "best": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.best_params.items()},
        "cv_score": round(r.cv_score, 4),
        "notes": r.warnings,
        "search": r.config["search"],
        "cv_rows": [{k: (float(f"{v:.4g}") if isinstance(v, float) else v) for k, v in row.items()
                     if k in ("scaler", "C", "rows", "mean_score")} for row in r.cv_results],
    }


def _write_features(path: Path, X: np.ndarray, y: np.ndarray, names: list[str]) -> Path:
    from featx.store import StoreWriter

    with StoreWriter(path, kind="features", row_shape=(X.shape[1],), dtype=np.float32,
                     paths=[str(i) for i in range(len(X))], labels=y, label_names=names, config={}) as w:
        w.add_batch(0, X)
        w.finish()
    return path


def run_featx_cli(Xtr, ytr, Xte, yte, names) -> dict:
    """``featx fit train.h5 --test test.h5`` in a fresh process: import, read, fit, score, export."""
    with tempfile.TemporaryDirectory() as tmp:
        train = _write_features(Path(tmp) / "train.h5", Xtr, ytr, names)
        test = _write_features(Path(tmp) / "test.h5", Xte, yte, names)
        cmd = [sys.executable, "-m", "featx", "fit", str(train), "--test", str(test), "-o", str(Path(tmp) / "clf.pkl")]
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    lines = proc.stdout.splitlines()
    fit_line = next((ln for ln in lines if ln.startswith("fit time:")), "")
    acc = next((ln for ln in lines if ln.startswith("rank-1 accuracy:")), "rank-1 accuracy: nan")
    return {"seconds": round(wall, 2), "accuracy": float(acc.split(":")[1]), "fit_time_line": fit_line}


def bench_pair(name: str, X: np.ndarray, y: np.ndarray, cli: bool = True) -> dict:
    from sklearn.model_selection import train_test_split

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=42)
    names = [str(c) for c in range(int(y.max()) + 1)]
    load = os.getloadavg()[0]
    book = run_book(Xtr, ytr, Xte, yte)
    featx = run_featx(Xtr.copy(), ytr, Xte, yte, names)  # featx scales its own copy in place
    whole = run_featx_cli(Xtr, ytr, Xte, yte, names) if cli else None
    speedup = book["seconds"] / featx["seconds"]
    delta = featx["accuracy"] - book["accuracy"]
    out = {
        "set": name, "rows": len(X), "dim": X.shape[1], "classes": len(names), "train": len(Xtr), "test": len(Xte),
        "load_avg_1min": round(load, 2),
        "book": book, "featx": featx,
        "speedup_wall": round(speedup, 2),
        "speedup_cpu": round(book["cpu_seconds"] / max(featx["cpu_seconds"], 1e-9), 2),
        "accuracy_points_featx_minus_book": round(100 * delta, 2),
        "targets": {"speedup_ge_3x": speedup >= 3, "speedup_ge_10x": speedup >= 10,
                    "accuracy_ge_book_minus_0.2_points": delta >= -0.002 - 1e-9},
    }
    if whole is not None:
        out["featx_whole_process"] = whole
        if "seconds" in whole:
            out["speedup_whole_process"] = round(book["seconds"] / whole["seconds"], 2)
    return out


_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from featx.fit import fit_features
t0 = time.perf_counter()
r, _ = fit_features({path!r}, {out!r}, overwrite=True)
print(json.dumps({{"seconds": round(time.perf_counter() - t0, 2), "accuracy": round(r.scores["rank1"], 4),
                  "best": r.best_params, "cv_score": round(r.cv_score, 4), "notes": r.warnings,
                  "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}}))
"""


def bench_scale(n: int) -> dict:
    """featx alone on an n x 2048 features file, in a fresh process: time and peak RSS."""
    X, y = randcnn_features(n, seed=7)
    names = [str(c) for c in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        path = _write_features(Path(tmp) / "features.h5", X, y, names)
        feature_bytes = X.nbytes
        del X
        code = _CHILD.format(root=str(ROOT), path=str(path), out=str(Path(tmp) / "clf.pkl"))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if proc.returncode != 0:
            return {"set": f"scale{n // 1000}k", "error": proc.stderr.strip().splitlines()[-1:]}
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = res["peak_rss_bytes"] / feature_bytes
    return {
        "set": f"scale{n // 1000}k", "rows": n, "dim": 2048, "feature_bytes": feature_bytes,
        "featx": {**res, "peak_rss_over_feature_bytes": round(ratio, 2)},
        "how": "featx fit on the HDF5 file in a fresh process (read + split + search + refit + score); "
               "peak RSS = that process's ru_maxrss",
        "targets": {"peak_rss_le_3x_feature_bytes": ratio <= 3},
    }


_OOC_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {scripts!r})
t0 = time.perf_counter()
if {method!r} == "legacy_sgd":
    from bench_fit import legacy_sgd
    res = legacy_sgd({train!r}, {test!r})
else:
    from featx.fit import fit_features
    r, _ = fit_features({train!r}, {out!r}, test={test!r}, overwrite=True, solver={method!r})
    res = {{"accuracy": round(r.scores["rank1"], 4), "best": r.best_params, "val_or_cv_score": round(r.cv_score, 4),
           "fit_seconds": round(r.fit_seconds, 2), "memory": r.config.get("memory"), "search": r.config.get("search")}}
res["seconds"] = round(time.perf_counter() - t0, 2)
from featx.fit.sgd import peak_rss  # VmHWM: ru_maxrss would count this script's memory at fork
res["peak_rss_bytes"] = peak_rss()
print(json.dumps(res, default=str))
"""


def legacy_sgd(train, test, slab_rows: int = 8192, epochs: int = 5, seed: int = 42, grid=None) -> dict:
    """The out-of-core fit featx had before issue 20 part 3, for side-by-side timing: one
    ``SGDClassifier(loss="log_loss", alpha=1 / (C * n_train))`` per C x scaler, ``partial_fit``
    on slabs of 8 concatenated, permuted blocks; C chosen on 10% of the training rows."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    from featx.fit.scaling import global_from_standard
    from featx.fit.search import DEFAULT_GRID
    from featx.store import open_store

    grid = sorted(DEFAULT_GRID if grid is None else grid)

    def slabs(r, sd, keep=None):
        block = slab_rows // 8
        starts = np.arange(0, len(r), block)
        if sd is not None:
            starts = np.random.default_rng(sd).permutation(starts)
        rng = np.random.default_rng(None if sd is None else sd + 1)
        for k in range(0, len(starts), 8):
            xs = [r.read(int(a), min(int(a) + block, len(r))) for a in starts[k : k + 8]]
            i = np.concatenate([np.arange(int(a), min(int(a) + block, len(r))) for a in starts[k : k + 8]])
            x = np.concatenate(xs)
            if sd is not None:
                perm = rng.permutation(len(i))
                x, i = x[perm], i[perm]
            m = np.ones(len(i), bool) if keep is None else keep[i]
            yield x[m], r.labels[i][m]

    t0 = time.perf_counter()
    with open_store(train, kind="features") as r:
        y = r.labels
        val = np.zeros(len(y), bool)
        val[np.random.default_rng(seed).permutation(len(y))[: min(slab_rows, len(y) // 10)]] = True
        n_train = int((~val).sum())
        standard = StandardScaler()
        for x, _ in slabs(r, seed, ~val):
            standard.partial_fit(x)
        fitted = {"standard": standard, "global": global_from_standard(standard)}
        classes = np.arange(len(r.label_names))
        models = {(s, c): SGDClassifier(loss="log_loss", alpha=1.0 / (c * n_train), random_state=seed, tol=None)
                  for s in fitted for c in grid}
        for e in range(epochs):
            for x, yy in slabs(r, seed + 1000 * (e + 1), ~val):
                z = {s: f.transform(x) for s, f in fitted.items()}
                for (s, _), m in models.items():
                    m.partial_fit(z[s], yy, classes=classes)
        correct = dict.fromkeys(models, 0)
        for x, yy in slabs(r, None, val):
            z = {s: f.transform(x) for s, f in fitted.items()}
            for (s, c), m in models.items():
                correct[(s, c)] += int((m.predict(z[s]) == yy).sum())
        best = max(models, key=lambda k: (correct[k], -k[1]))
    fit_seconds = time.perf_counter() - t0
    with open_store(test, kind="features") as r:
        hits = sum(int((models[best].predict(fitted[best[0]].transform(x)) == yy).sum()) for x, yy in slabs(r, None))
        n = len(r)
    return {"accuracy": round(hits / n, 4), "best": {"scaler": best[0], "C": best[1]},
            "val_or_cv_score": round(correct[best] / int(val.sum()), 4), "fit_seconds": round(fit_seconds, 2)}


def bench_ooc(n: int, methods=("lbfgs", "sgd", "legacy_sgd")) -> dict:
    """In-memory vs out-of-core featx fit (and the previous out-of-core fit) on one n x 2048 file pair."""
    from sklearn.model_selection import train_test_split

    try:
        X, y = fashion_cnn_features(n, seed=0)
        source = "fashion-mnist through the random CNN"
    except FileNotFoundError:
        X, y = randcnn_features(n, seed=7)
        source = "jittered digits through the random CNN"
    except ValueError as e:  # more rows than Fashion-MNIST has: the overlapping classes, as hard
        X, y = overlap_features(n, seed=7)
        source = f"overlapping classes through the random CNN ({e})"
    names = [str(c) for c in range(int(y.max()) + 1)]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=42)
    out = {"set": f"ooc{n // 1000}k", "rows": n, "dim": X.shape[1], "source": source, "train": len(ytr), "test": len(yte),
           "train_file_bytes": int(Xtr.nbytes), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        train = _write_features(Path(tmp) / "train.h5", Xtr, ytr, names)
        test = _write_features(Path(tmp) / "test.h5", Xte, yte, names)
        del X, Xtr, Xte
        for method in methods:
            load = os.getloadavg()[0]
            code = _OOC_CHILD.format(root=str(ROOT), scripts=str(ROOT / "scripts"), method=method, train=str(train),
                                     test=str(test), out=str(Path(tmp) / f"{method}.pkl"))
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            if proc.returncode != 0:
                out["runs"][method] = {"error": proc.stderr.strip().splitlines()[-3:]}
                continue
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            res["load_avg_1min_at_start"] = round(load, 2)
            res["peak_rss_mb"] = round(res["peak_rss_bytes"] / 2**20)
            out["runs"][method] = res
            print(f"[bench_fit] ooc {method} done: {res['seconds']} s, {res['accuracy']}", file=sys.stderr, flush=True)
    runs = out["runs"]
    if all("accuracy" in runs.get(m, {}) for m in ("lbfgs", "sgd")):
        sgd, mem = runs["sgd"], runs["lbfgs"]
        out["summary"] = {
            "accuracy_points_sgd_minus_lbfgs": round(100 * (sgd["accuracy"] - mem["accuracy"]), 2),
            "seconds_sgd_over_lbfgs": round(sgd["seconds"] / mem["seconds"], 2),
            "peak_rss_sgd_over_lbfgs": round(sgd["peak_rss_bytes"] / mem["peak_rss_bytes"], 2),
        }
        if sgd.get("memory"):  # featx's own account: interpreter + compiled step + data vs two slabs + heads
            m = sgd["memory"]
            out["summary"]["sgd_memory_mb"] = {k.removesuffix("_bytes"): round(m[k] / 2**20) for k in
                                               ("start_rss_bytes", "runtime_bytes", "data_bytes", "bound_bytes") if k in m}
            out["summary"]["sgd_within_bound"] = m.get("within_bound")
        if "accuracy" in runs.get("legacy_sgd", {}):
            old = runs["legacy_sgd"]
            out["summary"]["accuracy_points_sgd_minus_legacy_sgd"] = round(100 * (sgd["accuracy"] - old["accuracy"]), 2)
            out["summary"]["seconds_sgd_over_legacy_sgd"] = round(sgd["seconds"] / old["seconds"], 2)
        out["targets"] = {"within_0.5_points_of_lbfgs": out["summary"]["accuracy_points_sgd_minus_lbfgs"] >= -0.5,
                          "not_slower_than_legacy_sgd": (None if "seconds_sgd_over_legacy_sgd" not in out["summary"]
                                                         else out["summary"]["seconds_sgd_over_legacy_sgd"] <= 1.0)}
    return out


#: name -> (maker, default rows, hard?): the easy sets first, then the ones not close to separable
SETS = {
    "digits784": (digits_features, 12000, False),
    "randcnn2048": (randcnn_features, 25000, False),
    "digits_noisy784": (hard_digits_features, 12000, True),
    "overlap2048": (overlap_features, 15000, True),
    "many100": (many_class_features, 10000, True),
    "fashion784": (fashion_pixels, 12000, True),
    "fashioncnn2048": (fashion_cnn_features, 15000, True),
    # not looked at while tuning the search (issue 20 part 1, session 3): the held-out check, run at
    # the end of session 3; session 4 looked at it, so it is a tuning set now
    "fashioncnn_heldout2048": (fashion_cnn_heldout, 20000, True),
    # held out in session 4: run only at its end, after its changes were chosen on the sets above;
    # session 5 chose nothing on them (its preconditioner was tuned on the seven sets above)
    "fashion_t10k_heldout2048": (fashion_t10k_heldout, 10000, True),
    "fashion_hog_heldout1764": (fashion_hog_heldout, 20000, True),
    # held out in session 5: added before its measurements, first run in its final one
    "fashion_patches_heldout1024": (fashion_patches_heldout, 20000, True),
    # two classes (binary fits are LogisticRegression.fit, not preconditioned); added after session
    # 5's final run and run once beside it, so it is a tuning set
    "fashion_shirts_binary2048": (fashion_shirts_binary, 10000, True),
    # two classes, held out in session 6: added before its measurements, first run in its final one
    "fashion_coats_binary_heldout2048": (fashion_coats_binary_heldout, 10000, True),
    "fashion_hog_binary_heldout1764": (fashion_hog_binary_heldout, 10000, True),
}
#: The sets no setting of the search was chosen on.
HELD_OUT = ("fashion_t10k_heldout2048", "fashion_hog_heldout1764", "fashion_patches_heldout1024",
            "fashion_coats_binary_heldout2048", "fashion_hog_binary_heldout1764")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default=",".join(SETS),
                    help=f"comma-separated, among {', '.join(SETS)}, scale (featx alone at --n-scale rows)")
    ap.add_argument("--rows", default="", help="rows per set, e.g. overlap2048=8000,many100=5000 [default: each set's own]")
    ap.add_argument("--n-scale", type=int, default=100000)
    ap.add_argument("--repeat", type=int, default=1, help="run every set this many times (the minimum speed-up is the headline)")
    ap.add_argument("--no-cli", action="store_true", help="skip the whole-process featx fit run of each set")
    ap.add_argument("--details", action="store_true", help="also print every CV row of featx's search")
    ap.add_argument("--ooc", action="store_true", help="only the out-of-core comparison (in-memory vs --solver sgd vs the previous sgd)")
    ap.add_argument("--ooc-rows", type=int, default=60000, help="rows of the --ooc set (x 2048 features)")
    ap.add_argument("--ooc-methods", default="lbfgs,sgd,legacy_sgd", help="which fits --ooc runs")
    args = ap.parse_args(argv)
    rows = {k: int(v) for k, v in (kv.split("=") for kv in args.rows.split(",") if kv)}
    report = {
        "bench": "featx fit vs the book's GridSearchCV(LogisticRegression(), C in 1e-4..1, cv=3, n_jobs=-1)",
        "machine": {"cpus": os.cpu_count(), "load_avg_1min_at_start": round(os.getloadavg()[0], 2)},
        "runs": [],
    }
    t0 = time.perf_counter()
    if args.ooc:
        report["bench"] = "featx fit in memory (lbfgs) vs out of core (sgd) vs the previous out-of-core fit"
        report["runs"].append(bench_ooc(args.ooc_rows, args.ooc_methods.split(",")))
        report["machine"]["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
        report["total_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(report))
        return report
    names = args.sets.split(",")
    for name in names:
        if name not in SETS and not name.startswith("scale"):
            raise SystemExit(f"unknown set {name!r}")
    data = {}
    for rep in range(args.repeat):
        for name in names:
            if name.startswith("scale"):
                report["runs"].append(bench_scale(args.n_scale))
            else:
                maker, n, hard = SETS[name]
                if name not in data:
                    try:
                        data[name] = maker(rows.get(name, n))
                    except Exception as e:  # noqa: BLE001 - one set that cannot be made must not lose the others
                        data[name] = f"{type(e).__name__}: {e}"
                if isinstance(data[name], str):
                    report["runs"].append({"set": name, "skipped": data[name]})
                    continue
                run = bench_pair(name, *data[name], cli=not args.no_cli)
                report["runs"].append({**run, "hard": hard, "repeat": rep})
            print(f"[bench_fit] {name} #{rep} done at {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    pairs = [r for r in report["runs"] if "speedup_wall" in r]
    if pairs:
        report["summary"] = {
            "min_speedup_wall": min(r["speedup_wall"] for r in pairs),
            "min_speedup_wall_hard": min((r["speedup_wall"] for r in pairs if r["hard"]), default=None),
            "speedup_wall_range": [min(r["speedup_wall"] for r in pairs), max(r["speedup_wall"] for r in pairs)],
            "min_accuracy_points_featx_minus_book": min(r["accuracy_points_featx_minus_book"] for r in pairs),
            "min_speedup_wall_held_out": min((r["speedup_wall"] for r in pairs if r["set"] in HELD_OUT), default=None),
            "per_set_min_speedup": {n: min(r["speedup_wall"] for r in pairs if r["set"] == n) for n in dict.fromkeys(r["set"] for r in pairs)},
        }
    report["machine"]["load_avg_1min_at_end"] = round(os.getloadavg()[0], 2)
    report["total_seconds"] = round(time.perf_counter() - t0, 1)
    print(dumps(report, details=args.details))
    return report


def dumps(report: dict, details: bool = False) -> str:
    """JSON with one line per run (short enough to paste); ``details`` keeps every CV row."""
    runs = [{k: v for k, v in r.items()} for r in report["runs"]]
    if not details:
        for r in runs:
            if "featx" in r:
                r["featx"] = {k: v for k, v in r["featx"].items() if k != "cv_rows"}
    head = {k: v for k, v in report.items() if k != "runs"}
    lines = [json.dumps(head)[:-1] + ', "runs": [']
    lines += [" " + json.dumps(r) + ("," if i < len(runs) - 1 else "") for i, r in enumerate(runs)]
    return "\n".join(lines) + "\n]}"


if __name__ == "__main__":
    main()

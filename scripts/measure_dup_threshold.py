"""Measure where the near-duplicate threshold of ``featx inspect`` should sit; prints JSON.

On scikit-learn's digits (the dataset ``featx demo`` ships), with features of a small CNN this
script trains on the training split (no download possible here; ``featx extract -b keras:`` cuts
it before its classifier, as it would any saved Keras model):

* positives: each test image and an edited copy of it (JPEG re-encoded at quality 60, resized to
  90% and back, shifted 2 px, 10% brighter): what a near-duplicate looks like in practice;
* negatives: each test image and its nearest *other* image of the training split (digits holds
  no repeated scans, so these are distinct images, many of the same class).

For each candidate threshold: the share of edited copies found (recall) and the share of test
images whose nearest distinct training image would be called a duplicate (false positives).
Then ``featx inspect`` runs on train + test + the edited copies as a worked example.

    python3 scripts/measure_dup_threshold.py --out /tmp/dupthr --epochs 20
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def featx(*args) -> str:
    out = subprocess.run([sys.executable, "-m", "featx", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"featx {' '.join(map(str, args))} failed: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def edited(img: np.ndarray, rng) -> np.ndarray:
    from PIL import Image, ImageEnhance

    im = Image.fromarray(img)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=60)
    im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    w, h = im.size
    im = im.resize((int(w * 0.9), int(h * 0.9)), Image.BILINEAR).resize((w, h), Image.BILINEAR)
    im = ImageEnhance.Brightness(im).enhance(1.1)
    return np.roll(np.asarray(im), (2, 2), axis=(0, 1))


def train_cnn(train, val, path: Path, epochs: int) -> float:
    """conv(16)+BN x2 -> pool -> conv(32)+BN x2 -> global average -> dense(128) -> softmax, trained with Adam."""
    import keras
    from keras import layers

    from featx.store import open_store

    with open_store(train, kind="images") as r:
        x, y = r.load()
        n = r.num_classes
    with open_store(val, kind="images") as r:
        xv, yv = r.load()
    keras.utils.set_random_seed(0)
    inp = keras.Input(x.shape[1:])
    h = layers.Rescaling(1 / 255.0)(inp)
    for width in (16, 16, "pool", 32, 32):
        if width == "pool":
            h = layers.MaxPooling2D()(h)
        else:
            h = layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
            h = layers.Activation("relu")(layers.BatchNormalization()(h))
    h = layers.GlobalAveragePooling2D()(h)
    h = layers.Dense(128, activation="relu", name="embedding")(h)
    m = keras.Model(inp, layers.Dense(n, activation="softmax")(h))
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = m.fit(x.astype("float32"), y, validation_data=(xv.astype("float32"), yv), epochs=epochs, batch_size=64,
                 verbose=0)
    m.save(path)
    return float(hist.history["val_accuracy"][-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/featx-dupthr")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--size", type=int, default=40)
    a = ap.parse_args()
    out = Path(a.out)
    t0 = time.perf_counter()
    from featx.data.datasets import write_digits
    from featx.store import StoreWriter, open_store

    write_digits(out / "images", size=a.size)
    if not (out / "data" / "test.h5").exists():
        featx("build", out / "images", "-o", out / "data", "--size", a.size)
    model = out / "cnn.keras"
    if not model.exists():
        val_acc = train_cnn(out / "data" / "train.h5", out / "data" / "val.h5", model, a.epochs)
    else:
        val_acc = None
    rng = np.random.default_rng(0)
    dup = out / "data" / "test_edited.h5"
    if not dup.exists():
        with open_store(out / "data" / "test.h5", kind="images") as r:
            x, _ = r.load()
            y, names, paths = r.labels, r.label_names, r.paths
        with StoreWriter(dup, kind="images", row_shape=x.shape[1:], dtype=np.uint8, paths=[f"edited/{p}" for p in paths],
                         labels=y, label_names=names, config={"split": "edited", "of": "test"}, overwrite=True) as w:
            w.add_batch(0, np.stack([edited(im, rng) for im in x]))
            w.finish()
    feats = {}
    for split in ("train", "test", "test_edited"):
        f = out / "features" / f"{split}.h5"
        if not f.exists():
            featx("extract", out / "data" / f"{split}.h5", "-o", f, "-b", f"keras:{model}", "--no-progress")
        with open_store(f, kind="features") as r:
            feats[split] = r.load()[0]

    from featx.inspect import normalize, search_pairs

    tr, te, ed = (normalize(feats[k]) for k in ("train", "test", "test_edited"))
    pos = np.einsum("ij,ij->i", te.astype(np.float64), ed.astype(np.float64))
    neg = search_pairs(te, tr, threshold=1.0, engine="numpy").nearest.astype(np.float64)
    rows = []
    for t in (0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99):
        rows.append({"threshold": t, "edited_copies_found": round(float(np.mean(pos >= t)), 4),
                     "distinct_images_flagged": round(float(np.mean(neg >= t)), 4)})
    q = [1, 5, 50, 95, 99]
    inspect_dir = out / "inspect"
    printed = featx("inspect", out / "features" / "train.h5", out / "features" / "test.h5",
                    out / "features" / "test_edited.h5", "-o", inspect_dir, "--overwrite", "--no-progress",
                    "--images", out / "data" / "train.h5", "--images", out / "data" / "test.h5", "--images", dup)
    print(json.dumps({
        "dataset": f"digits (sklearn), {a.size} px, featx build splits",
        "backbone": f"small CNN trained here ({a.epochs} epochs, val accuracy {val_acc}), cut before its classifier "
                    f"({tr.shape[1]}-d)",
        "rows": {k: len(v) for k, v in feats.items()},
        "edited_copy_similarity_quantiles": {p: round(float(np.percentile(pos, p)), 4) for p in q},
        "nearest_distinct_similarity_quantiles": {p: round(float(np.percentile(neg, p)), 4) for p in q},
        "by_threshold": rows, "inspect_output": printed.strip().splitlines(),
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=1))


if __name__ == "__main__":
    main()

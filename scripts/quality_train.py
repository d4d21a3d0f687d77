"""Short-budget quality of ``featx train``: scikit-learn digits, a few sizes, a few settings.

For each stored size S (input S - 4, so training takes random crops and evaluation a center crop)
the digits (1,797 scans, written as tinted RGB images) are built into train/val/test stores
(60/10/30: ~1,080 train images), then:

* ``pixel_lr``: a logistic regression (standardized raw pixels of the center crop, sklearn's
  defaults, ``max_iter=2000``) fitted on the train split, scored on the test split;
* every ``--variant NAME='ARGS'``: ``featx train minigooglenet ... --epochs E ARGS`` on the train
  (+ val) split, then ``featx evaluate`` on the test split (rank-1, single crop and ten-crop).

Variants run in subprocesses with this environment's ``PYTHONPATH``, so an older featx checkout
can be measured with the same script. Prints JSON (one object; also written to ``--json``).

    python scripts/quality_train.py --sizes 28,36 --epochs 8 --variant default=''
    python scripts/quality_train.py --variant none='--augment none' --variant book='--augment book'
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def prepare(work: Path, size: int, seed: int) -> Path:
    from featx.build import build
    from featx.data.datasets import write_digits

    images = write_digits(work / "images", size=64, seed=seed)
    out = work / f"s{size}"
    if not (out / "test.h5").exists():
        build(images, out, size=size, val=0.1, test=0.3, seed=seed, progress=False)
    return out


def pixel_lr(store: Path, input_size: int, seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from featx.store import open_store

    def load(split):
        with open_store(store / f"{split}.h5") as r:
            x, y = r.load()
        o = (x.shape[1] - input_size) // 2
        x = x[:, o:o + input_size, o:o + input_size].reshape(len(x), -1).astype("float32") / 255.0
        return x, y

    xtr, ytr = load("train")
    xte, yte = load("test")
    t0 = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)).fit(xtr, ytr)
    return {"rank1": round(float(clf.score(xte, yte)), 4), "train_rows": len(ytr), "test_rows": len(yte),
            "fit_seconds": round(time.perf_counter() - t0, 2)}


def run_variant(store: Path, run: Path, input_size: int, epochs: int, args: str) -> dict:
    cmd = [sys.executable, "-m", "featx", "train", "minigooglenet", "--train", str(store / "train.h5"),
           "--val", str(store / "val.h5"), "-o", str(run), "--input-size", str(input_size), "--epochs", str(epochs),
           "--no-progress", *shlex.split(args)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        return {"error": (p.stdout + p.stderr).strip().splitlines()[-1:], "args": args}
    wall = time.perf_counter() - t0
    ev = run / "test.eval.json"
    p = subprocess.run([sys.executable, "-m", "featx", "evaluate", str(run), "--data", str(store / "test.h5"),
                        "--ten-crop", "-o", str(ev), "--no-progress"], capture_output=True, text=True)
    if p.returncode:
        return {"error": (p.stdout + p.stderr).strip().splitlines()[-1:], "args": args}
    rec = json.loads(ev.read_text())
    hist = json.loads((run / "history.json").read_text())
    conf = json.loads((run / "config.json").read_text())
    return {
        "args": args,
        "test_rank1": round(rec["single_crop"]["rank1"], 4),
        "test_rank1_ten_crop": round(rec["ten_crop"]["rank1"], 4),
        "last_train_accuracy": round(hist["accuracy"][-1], 4),
        "val_accuracy": [round(v, 3) for v in hist.get("val_accuracy", [])],
        "train_seconds": conf.get("train_seconds"),
        "wall_seconds": round(wall, 1),
        "kept_epoch": conf.get("kept_epoch"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/featx-quality", help="cache of images, stores and runs")
    ap.add_argument("--sizes", default="36", help="stored sides, comma-separated (input = side - 4)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant", action="append", default=[], help="NAME=ARGS (extra featx train options)")
    ap.add_argument("--tag", default="", help="prefix of the run folders (keeps checkouts apart)")
    ap.add_argument("--json", default=None, help="also write the JSON here")
    a = ap.parse_args()

    work = Path(a.work)
    out = {"epochs": a.epochs, "model": "minigooglenet", "dataset": "sklearn digits (tinted RGB), 60/10/30 split",
           "sizes": {}}
    for size in [int(s) for s in a.sizes.split(",")]:
        store = prepare(work, size, a.seed)
        res = {"input_size": size - 4, "pixel_lr": pixel_lr(store, size - 4, a.seed)}
        for v in a.variant:
            name, _, args = v.partition("=")
            res[name] = run_variant(store, work / "runs" / f"{a.tag}{name}_s{size}", size - 4, a.epochs, args)
            print(json.dumps({size: {name: res[name]}}), file=sys.stderr, flush=True)
        out["sizes"][str(size)] = res
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        Path(a.json).write_text(text)


if __name__ == "__main__":
    main()

"""Benchmark ``featx finetune`` on a transfer task made here (CPU; prints JSON).

The task: scikit-learn's digits drawn as small colour images (as ``featx demo`` draws them, random
ink and background colours). ``featx train`` fits MiniGoogLeNet on the digits 0-4 (the source);
that network, as ``keras:RUN/model.keras``, is the pretrained backbone for the digits 5-9 (the
target, few training images per class). On the target:

* ``probe``: features (featx extract) + logistic regression (featx fit), scored on the test split;
* ``lpft``: ``featx finetune --head CLF`` (the head starts at the probe, then everything trains);
* ``random_head_ft``: ``featx finetune --head-epochs 0`` (fine-tuning from a random head);
* ``head_then_ft``: ``featx finetune`` defaults without a classifier (head epochs, then fine-tuning);

and the training step rate of ``featx finetune`` against ``featx train`` on the same images, the
same network and batch (steady-state epochs, no validation): the cost of the fine-tuning network's
extra layers (resize, preprocessing, frozen BatchNorm) and of the phases.

    python scripts/bench_finetune.py [--source-per-class 120] [--target-per-class 24] [--epochs 3]

No GPU here: the GPU figures the issue asks for (ResNet50 at 224, mixed precision + XLA) are not
measured by this script's CPU run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _store(path, x, y, names):
    from featx.store import StoreWriter

    with StoreWriter(path, kind="images", row_shape=x.shape[1:], dtype=np.uint8,
                     paths=[f"syn/{i:05d}.png" for i in range(len(x))], labels=y, label_names=names,
                     config={"synthetic": True}, compute_mean=True, overwrite=True) as w:
        w.add_batch(0, x)
        w.finish()
    return str(path)


def _digits(size: int, seed: int = 0):
    """All 1,797 digits as (N, size, size, 3) uint8 colour images and their labels."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    out = np.empty((len(d.images), size, size, 3), np.uint8)
    for i, img in enumerate(d.images):
        mask = np.clip(cv2.resize((img / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC), 0, 1)
        mask = np.roll(mask, tuple(rng.integers(-size // 10, size // 10 + 1, 2)), axis=(0, 1))
        fg, bg = rng.integers(120, 256, 3), rng.integers(0, 90, 3)
        rgb = bg[None, None] * (1 - mask[..., None]) + fg[None, None] * mask[..., None] + rng.normal(0, 6, (size, size, 3))
        out[i] = np.clip(rgb, 0, 255).astype(np.uint8)
    return out, d.target.astype(np.int64)


def _take(x, y, classes, start, count):
    """Rows ``start:start+count`` of each class in ``classes`` (relabelled 0..)."""
    idx = np.concatenate([np.flatnonzero(y == c)[start:start + count] for c in classes])
    return x[idx], (y[idx] - classes[0]).astype(np.int64)


def _cli(args):
    from click.testing import CliRunner

    from featx.cli import cli

    t = time.perf_counter()
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if r.exit_code != 0:
        raise SystemExit(f"featx {' '.join(map(str, args[:2]))} failed:\n{r.output}")
    return time.perf_counter() - t


def _rank1(path) -> float:
    return float(json.loads(Path(path).read_text())["single_crop"]["rank1"])


def _steady_rate(run, rows) -> float:
    hist = json.loads((Path(run) / "history.json").read_text())
    secs = hist["seconds"][1:] or hist["seconds"]  # the first epoch traces and compiles
    return round(rows * len(secs) / sum(secs), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source-per-class", type=int, default=150, help="source digits per class (of ~180)")
    ap.add_argument("--target-per-class", type=int, default=25, help="target training digits per class")
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (and source training epochs)")
    ap.add_argument("--size", type=int, default=20, help="stored side (network input 16)")
    ap.add_argument("--lr", type=float, default=None, help="fine-tuning peak learning rate [default: featx finetune's]")
    ap.add_argument("--lpft-lrs", default="3e-5", help="extra LP-FT runs at these learning rates (comma-separated)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    d = Path(a.out or tempfile.mkdtemp(prefix="bench_ft_"))
    d.mkdir(parents=True, exist_ok=True)
    x, y = _digits(a.size)  # every split at one stored side: the network's input is the stored side
    src_cls, tgt = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
    names = [str(c) for c in tgt]
    src = _store(d / "src.h5", *_take(x, y, src_cls, 0, a.source_per_class), [str(c) for c in src_cls])
    n, v = a.target_per_class, 25
    tr = _store(d / "train.h5", *_take(x, y, tgt, 0, n), names)
    va = _store(d / "val.h5", *_take(x, y, tgt, n, v), names)
    te = _store(d / "test.h5", *_take(x, y, tgt, n + v, 1000), names)
    from featx.store import open_store

    with open_store(tr) as r:
        n_train = len(r)
    common = ["--batch-size", 32, "--no-progress"]
    with open_store(te) as r:
        n_test = len(r)
    out = {"task": {"data": "sklearn digits 0-4 -> 5-9", "source_images": a.source_per_class * 5,
                    "target_train": n_train, "target_val": 5 * v, "target_test": n_test, "classes": 5,
                    "stored_px": a.size, "input_px": 16, "epochs": a.epochs}}
    secs = {}
    secs["source_train"] = _cli(["train", "minigooglenet", "--train", src, "-o", d / "src", "--input-size", 16,
                                 "--epochs", a.epochs, "--keep", "last", *common])
    spec = f"keras:{d / 'src' / 'model.keras'}"
    t = time.perf_counter()
    for split, path in (("train", tr), ("val", va), ("test", te)):
        _cli(["extract", path, "-o", d / f"f_{split}.h5", "--backbone", spec, "--no-progress"])
    _cli(["fit", d / "f_train.h5", "--test", d / "f_val.h5", "-o", d / "clf.pkl"])
    _cli(["evaluate", d / "clf.pkl", "--data", d / "f_test.h5"])
    secs["probe"] = time.perf_counter() - t
    acc = {"probe": _rank1(d / "clf.eval.json")}
    from featx.finetune import FINETUNE_LR

    lr = a.lr or FINETUNE_LR
    out["task"]["lr"] = lr
    arms = {"lpft": ["--head", d / "clf.pkl"], "random_head_ft": ["--head-epochs", 0], "head_then_ft": []}
    arms_lr = dict.fromkeys(arms, lr)
    for extra_lr in [float(v) for v in a.lpft_lrs.split(",") if v]:
        arms[f"lpft_lr{extra_lr:g}"] = ["--head", d / "clf.pkl"]
        arms_lr[f"lpft_lr{extra_lr:g}"] = extra_lr
    starts = {}
    for arm, extra in arms.items():
        run = d / arm
        secs[arm] = _cli(["finetune", spec, "--train", tr, "--val", va, "-o", run, "--epochs", a.epochs,
                          "--lr", arms_lr[arm], *extra, *common])
        _cli(["evaluate", run, "--data", te, "--no-progress"])
        acc[arm] = _rank1(run / "eval.json")
        conf = json.loads((run / "config.json").read_text())
        starts[arm] = {"lr": arms_lr[arm], "val_accuracy_at_start": conf["start"]["val_accuracy"], "kept_epoch": conf["kept_epoch"],
                       "best_val_accuracy": max(json.loads((run / "history.json").read_text())["val_accuracy"])}
    out["test_rank1"] = acc
    out["finetune_runs"] = starts
    out["wall_seconds"] = {k: round(v, 1) for k, v in secs.items()}
    # step rate: same images (target train), same network (the source MiniGoogLeNet), same batch, no validation
    _cli(["train", "minigooglenet", "--train", tr, "-o", d / "speed_train", "--input-size", 16, "--epochs", 3,
          "--keep", "last", "--precise-bn-images", 0, *common])
    _cli(["finetune", spec, "--train", tr, "-o", d / "speed_ft", "--head-epochs", 0, "--epochs", 3, "--keep", "last",
          "--input-size", 16, *common])
    rt, rf = _steady_rate(d / "speed_train", n_train), _steady_rate(d / "speed_ft", n_train)
    out["train_step_images_per_second"] = {"featx_train": rt, "featx_finetune": rf, "finetune_over_train": round(rf / rt, 3)}
    out["gpu"] = "not measured (no GPU on this machine)"
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""Benchmark ``featx finetune`` on a transfer task made here (CPU; prints JSON).

The task: a 10-class synthetic image problem (:mod:`featx.data.synthetic`). ``featx train`` fits
MiniGoogLeNet on classes 0-4 (the source); that network, as ``keras:RUN/model.keras``, is the
pretrained backbone for classes 5-9 (the target, few images per class). On the target:

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


def _split(per_class, size, classes, seed):
    from featx.data.synthetic import synthetic_images

    x, y = synthetic_images(per_class * 10, size, 10, seed=seed)
    keep = np.isin(y, classes)
    return x[keep], (y[keep] - classes[0]).astype(np.int64)


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
    ap.add_argument("--source-per-class", type=int, default=120)
    ap.add_argument("--target-per-class", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs (and source training epochs)")
    ap.add_argument("--size", type=int, default=20, help="stored side (network input 16)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    d = Path(a.out or tempfile.mkdtemp(prefix="bench_ft_"))
    d.mkdir(parents=True, exist_ok=True)
    names = [f"t{i}" for i in range(5)]
    src = _store(d / "src.h5", *_split(a.source_per_class, a.size, [0, 1, 2, 3, 4], 0), [f"s{i}" for i in range(5)])
    tr = _store(d / "train.h5", *_split(a.target_per_class, a.size, [5, 6, 7, 8, 9], 1), names)
    va = _store(d / "val.h5", *_split(a.target_per_class, a.size, [5, 6, 7, 8, 9], 2), names)
    te = _store(d / "test.h5", *_split(2 * a.target_per_class, a.size + 4, [5, 6, 7, 8, 9], 3), names)
    from featx.store import open_store

    with open_store(tr) as r:
        n_train = len(r)
    common = ["--batch-size", 32, "--no-progress"]
    out = {"task": {"source_images": a.source_per_class * 5, "target_train": n_train, "classes": 5,
                    "stored_px": a.size, "input_px": 16, "epochs": a.epochs, "lr": a.lr}}
    secs = {}
    secs["source_train"] = _cli(["train", "minigooglenet", "--train", src, "-o", d / "src", "--input-size", 16,
                                 "--epochs", a.epochs + 2, "--keep", "last", *common])
    spec = f"keras:{d / 'src' / 'model.keras'}"
    t = time.perf_counter()
    for split, path in (("train", tr), ("val", va), ("test", te)):
        _cli(["extract", path, "-o", d / f"f_{split}.h5", "--backbone", spec, "--no-progress"])
    _cli(["fit", d / "f_train.h5", "--test", d / "f_val.h5", "-o", d / "clf.pkl"])
    _cli(["evaluate", d / "clf.pkl", "--data", d / "f_test.h5"])
    secs["probe"] = time.perf_counter() - t
    acc = {"probe": _rank1(d / "clf.eval.json")}
    arms = {"lpft": ["--head", d / "clf.pkl"], "random_head_ft": ["--head-epochs", 0], "head_then_ft": []}
    starts = {}
    for arm, extra in arms.items():
        run = d / arm
        secs[arm] = _cli(["finetune", spec, "--train", tr, "--val", va, "-o", run, "--epochs", a.epochs, "--lr", a.lr,
                          *extra, *common])
        _cli(["evaluate", run, "--data", te, "--no-progress"])
        acc[arm] = _rank1(run / "eval.json")
        conf = json.loads((run / "config.json").read_text())
        starts[arm] = {"val_accuracy_at_start": conf["start"]["val_accuracy"], "kept_epoch": conf["kept_epoch"],
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

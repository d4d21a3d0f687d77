"""featx's core pipeline under ``KERAS_BACKEND=jax`` (a subprocess: Keras fixes its backend at import).

ONE JAX process runs the whole pipeline through the Python API and prints its results as JSON:
build (train/val) -> extract (a folder through the thread loader, and the images store; a ``keras:``
model trained by featx on TensorFlow in this process as the backbone) -> fit -> predict; the
out-of-core fit (softmax heads: the weights TensorFlow gives); train 1 epoch -> evaluate with ten-crop; finetune 1 epoch (LP-FT from the fit's classifier), the fine-tuned
model loaded back; and whether TensorFlow was ever imported. The parent asserts on that JSON, and
extracts the same images with the same model on TensorFlow while the child runs: features agree
to 1e-4.

The child compiles with ``XLA_FLAGS=--xla_backend_optimization_level=0``: these networks are tiny,
so the run is almost all XLA compile time (on this loaded CPU JAX 0.10's default threefry alone
took 5-16 s to compile the random initializer of each weight shape, 0.4 s at level 0); the child's
CPU time fell from 24 s to 17 s. The programs are the same, only LLVM's optimization differs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]

#: the environment of a featx JAX child process (CPU, quiet, fast XLA compiles)
JAX_ENV = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}

SCRIPT = r"""
import json, sys, time
from pathlib import Path
import numpy as np

work, ready = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, sys.argv[3])
out, t0 = {"seconds": {}}, time.perf_counter()

def lap(stage):
    out["seconds"][stage] = round(time.perf_counter() - t0, 2)

from tests._scratch_helpers import make_stores, register_tiny
from featx.evaluate import evaluate_network
from featx.runtime.backend import backend_name
from featx.train import TrainConfig, train

register_tiny()
stores = make_stores(work / "stores", size=20, n_train=48, n_val=16, n_test=20)
res = train(TrainConfig(model="tinycnn", train=stores["train"], val=stores["val"], out=str(work / "run"), epochs=1,
                        batch_size=16, input_size=16, precise_bn_images=32), verbose=0)
ev = evaluate_network(work / "run", stores["test"], ten_crop=True, batch_size=8, progress=False)
out["train"] = {"epochs": res.epochs, "model": res.model_path.exists(), "strategy": res.strategy,
                "loss": res.last.get("loss")}
out["eval"] = {k: ev.record[k]["rank1"] for k in ("single_crop", "ten_crop")}
lap("train_evaluate")

# the TensorFlow-trained model and the image folder: made by the parent meanwhile
while not ready.exists():
    if time.perf_counter() - t0 > 200:
        sys.exit(f"the parent never wrote {ready}")
    time.sleep(0.05)
model_path, src = json.loads(ready.read_text())
lap("waited_for_the_tensorflow_model")

from featx.build import build
from featx.extract import extract
from featx.fit import fit_features
from featx.predict import predict_images

spec = f"keras:{model_path}"
build(src, work / "data", size=24, val=0.25, test=0.0, progress=False, workers=1)
extract(src, work / "jax_src.h5", backbone=spec, batch_size=8, progress=False)  # the thread loader
extract(work / "data" / "train.h5", work / "jax_train.h5", backbone=spec, batch_size=8, progress=False)  # a store
fit_features(work / "jax_train.h5", work / "clf.pkl", cv=2, grid=[0.1, 1.0, 10.0])
files = sorted(str(p) for p in Path(src).rglob("*.png"))[:5]
rows, manifest = predict_images(work / "clf.pkl", files + [str(work / "missing.png")], top_k=2)
out["predict"] = [[r.label, r.probability, r.error] for r in rows]
out["names"] = manifest["label_names"]
lap("build_extract_fit_predict")
from featx.fit import fit_sgd  # out of core: the softmax heads on the JAX backend
sgd = fit_sgd(work / "jax_train.h5", slab_rows=16, epochs=3, grid=[0.1, 10.0], seed=0)
out["sgd"] = {"backend": sgd.config["keras_backend"], "coef": sgd.estimator[-1].coef_.tolist(), "best": sgd.best_params}
lap("fit_sgd")

from featx.finetune import FinetuneConfig, finetune
from featx.runtime.keras_files import load_keras_model

ft = finetune(FinetuneConfig(backbone=spec, train=str(work / "data" / "train.h5"), val=str(work / "data" / "val.h5"),
                             head=str(work / "clf.pkl"), out=str(work / "ft"), epochs=1, batch_size=8, input_size=16,
                             lr=1e-3), verbose=0)
model = load_keras_model(ft.model_path)
x = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype("float32")
p = np.asarray(model.predict_on_batch(x), dtype="float64")
out["finetune"] = {"epochs": ft.epochs, "head_epochs": ft.head_epochs, "last": ft.last, "start": ft.start,
                   "kept_epoch": ft.kept_epoch, "head_check": ft.head_check,
                   "probs_shape": list(p.shape), "probs_sum": p.sum(axis=1).tolist()}
lap("finetune")
out["backend"] = backend_name()
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


def _tf_model(tmp):
    """A tinycnn trained 1 epoch by featx on TensorFlow (model.keras) and a folder of images."""
    from featx.train import TrainConfig, train
    from tests._scratch_helpers import make_stores, register_tiny
    from tests.conftest import color_image, save

    register_tiny()
    stores = make_stores(tmp / "stores", size=20, n_train=48, n_val=16, n_test=8)
    res = train(TrainConfig(model="tinycnn", train=stores["train"], val=stores["val"], out=str(tmp / "tfrun"),
                            epochs=1, batch_size=16, input_size=16, precise_bn_images=0), verbose=0)
    rng = np.random.default_rng(7)
    for c, name in enumerate(["red", "green", "blue"]):
        for i in range(8):
            save(color_image(rng, w=22 + i % 3, h=20, tint=c), tmp / "src" / name / f"{name}_{i}.png")
    return res.model_path


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """The JAX child's JSON. The child starts at once (train/evaluate need nothing from here) while
    this process trains the TensorFlow model, then extracts the folder with it on TensorFlow."""
    from featx.extract import extract
    from featx.utils import atomic_write_json

    tmp = tmp_path_factory.mktemp("jaxpipe")
    ready = tmp / "ready.json"
    args = [sys.executable, "-c", SCRIPT, str(tmp / "jax"), str(ready), str(ROOT)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **JAX_ENV},
                          cwd=ROOT) as p:
        try:
            model_path = _tf_model(tmp)
            atomic_write_json(ready, [str(model_path), str(tmp / "src")])
            extract(tmp / "src", tmp / "tf_src.h5", backbone=f"keras:{model_path}", batch_size=8, progress=False)
            stdout, stderr = p.communicate(timeout=240)
        except BaseException:
            p.kill()
            raise
    assert p.returncode == 0, stderr[-4000:]
    return tmp, json.loads(stdout.strip().splitlines()[-1])


def test_jax_run_never_imports_tensorflow(jax_run):
    _, r = jax_run
    assert r["backend"] == "jax" and r["tensorflow_imported"] is False
    print("JAX child stage ends (s):", r["seconds"])


def test_features_of_a_tensorflow_trained_model_match_under_jax(jax_run):
    from featx.store import open_store

    tmp, _ = jax_run
    with open_store(tmp / "tf_src.h5", kind="features") as a, open_store(tmp / "jax" / "jax_src.h5", kind="features") as b:
        fa, fb = a.load()[0], b.load()[0]
        assert a.paths == b.paths and list(a.labels) == list(b.labels)
    assert fa.shape == fb.shape == (24, 16)
    assert np.abs(fa - fb).max() <= 1e-4
    assert np.abs(fa).max() > 1e-3  # not trivially zero


def test_build_extract_fit_predict_under_jax(jax_run):
    _, r = jax_run
    preds = r["predict"]
    assert len(preds) == 6
    assert r["names"] == ["blue", "green", "red"]
    for label, p, err in preds[:5]:
        assert err is None and label in r["names"] and 0 < p <= 1
    assert preds[5][0] is None and preds[5][2]  # the missing file: its own error row


def test_train_one_epoch_then_ten_crop_evaluate_under_jax(jax_run):
    tmp, r = jax_run
    assert r["train"]["epochs"] == 1 and r["train"]["model"] and r["train"]["strategy"] == "one"
    assert np.isfinite(r["train"]["loss"])
    for k in ("single_crop", "ten_crop"):
        assert 0.0 <= r["eval"][k] <= 1.0
    assert (tmp / "jax" / "run" / "eval.json").exists()


def test_finetune_one_epoch_under_jax(jax_run):
    """LP-FT from the fit's classifier: the folded head reproduces it under JAX, one epoch runs,
    the run folder is complete and its model loads (under JAX in the child, under TensorFlow here)."""
    tmp, r = jax_run
    ft = r["finetune"]
    assert ft["epochs"] == 1 and ft["head_epochs"] == 0  # LP-FT: no head phase
    assert ft["head_check"]["images"] == 6  # checked on the val images (a quarter of 24)
    assert ft["head_check"]["max_abs_diff"] <= 1e-3
    for k in ("accuracy", "val_accuracy"):
        assert 0.0 <= ft["last"][k] <= 1.0
    assert np.isfinite(ft["last"]["loss"]) and 0.0 <= ft["start"]["val_accuracy"] <= 1.0
    assert ft["kept_epoch"] in (0, 1)  # the start point (the probe) or the epoch, by val accuracy
    assert ft["probs_shape"] == [4, 3] and np.allclose(ft["probs_sum"], 1.0, atol=1e-4)

    run = tmp / "jax" / "ft"
    hist = json.loads((run / "history.json").read_text())
    assert len(hist["epoch"]) == 1 and 0.0 <= hist["val_accuracy"][0] <= 1.0
    conf = json.loads((run / "config.json").read_text())
    assert conf["status"] == "finished" and conf["kind"] == "finetune" and conf["strategy"] == "one"
    assert (run / "curves.png").stat().st_size > 0

    from featx.runtime.keras_files import load_keras_model

    model = load_keras_model(run / "model.keras")  # saved under JAX, loaded on TensorFlow
    assert tuple(model.output_shape) == (None, 3)


# ------------------------------------------------------------------ multi-process data parallel
WORKER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tests._scratch_helpers import register_tiny
register_tiny()
from featx.cli import cli
cli.main(sys.argv[2:], prog_name="featx")
"""


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.skipif(os.environ.get("FEATX_TEST_MULTIWORKER") != "1",
                    reason="two JAX training processes: ~40 s on the shared 2-core machine, over the suite's budget; "
                           "run with FEATX_TEST_MULTIWORKER=1")
def test_two_process_multiworker_training_keeps_both_replicas_equal(tmp_path):
    """Two localhost processes run ``featx train tinycnn --strategy multiworker`` (keras.distribution
    across processes, gloo all-reduce on the CPU): each reads its own half of every batch, yet both
    end with the same loss and the same weights, BatchNorm statistics included (moved from their
    start: they trained). Both list the same two devices, one per process."""
    from tests._scratch_helpers import make_stores

    stores = make_stores(tmp_path / "stores", size=20, n_train=32, n_val=8, n_test=4)
    ports = _free_ports(2)
    procs = []
    for i in range(2):
        env = {**os.environ, **JAX_ENV, "KERAS_DISTRIBUTION_JOB_ADDRESSES": ",".join(f"localhost:{p}" for p in ports),
               "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": str(i)}
        args = [sys.executable, "-c", WORKER, str(ROOT), "train", "tinycnn", "--train", stores["train"],
                "-o", str(tmp_path / f"r{i}"), "--strategy", "multiworker", "--epochs", "1", "--batch-size", "8",
                "--input-size", "16", "--precise-bn-images", "0", "--no-progress"]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                      cwd=ROOT))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=180)[0])
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
        assert "multiworker, 2 replicas" in out

    confs = [json.loads((tmp_path / f"r{i}" / "config.json").read_text()) for i in range(2)]
    hists = [json.loads((tmp_path / f"r{i}" / "history.json").read_text()) for i in range(2)]
    assert [c["strategy"] for c in confs] == ["multiworker"] * 2 and [c["replicas"] for c in confs] == [2, 2]
    assert confs[0]["global_batch_size"] == 16
    assert confs[0]["devices"] == confs[1]["devices"] and len(set(confs[0]["devices"])) == 2
    assert hists[0]["loss"] == hists[1]["loss"] and np.isfinite(hists[0]["loss"][0])

    from featx.runtime.keras_files import load_keras_model

    models = [load_keras_model(tmp_path / f"r{i}" / "model.keras") for i in range(2)]
    w = [[np.asarray(v) for v in m.get_weights()] for m in models]
    assert len(w[0]) == len(w[1]) > 0 and all(np.array_equal(a, b) for a, b in zip(*w))
    moving_mean = np.asarray(models[0].get_layer("bn1").moving_mean)
    assert np.abs(moving_mean).max() > 1e-3  # from zeros: the replicas trained, and stayed equal


def test_out_of_core_fit_under_jax_gives_the_tensorflow_weights(jax_run):
    from featx.fit import fit_sgd

    tmp, r = jax_run
    tf = fit_sgd(tmp / "jax" / "jax_train.h5", slab_rows=16, epochs=3, grid=[0.1, 10.0], seed=0)
    assert r["sgd"]["backend"] == "jax" and tf.config["keras_backend"] == "tensorflow"
    coef = np.asarray(r["sgd"]["coef"])
    assert coef.shape == tf.estimator[-1].coef_.shape and np.abs(coef).max() > 1e-3
    np.testing.assert_allclose(coef, tf.estimator[-1].coef_, rtol=1e-3, atol=1e-5)
    assert r["sgd"]["best"] == tf.best_params

"""featx's core pipeline under ``KERAS_BACKEND=jax`` (a subprocess: Keras fixes its backend at import).

One JAX process runs: build -> extract (the thread loader; a ``keras:`` model trained by featx on
TensorFlow in this process as the backbone) -> fit -> predict; train 1 epoch -> evaluate with
ten-crop; and checks that TensorFlow was never imported. The TensorFlow side extracts the same
images with the same model: features agree to 1e-4.
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

SCRIPT = r"""
import json, sys
from pathlib import Path
import numpy as np

work, model_path, src = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
out = {}
from featx.build import build
from featx.extract import extract
from featx.fit import fit_features
from featx.predict import predict_images
from featx.runtime.backend import backend_name
build(src, work / "data", size=24, val=0.0, test=0.0, progress=False, workers=1)
extract(src, work / "jax_src.h5", backbone=f"keras:{model_path}", batch_size=8, progress=False)  # thread loader
extract(work / "data" / "train.h5", work / "jax_train.h5", backbone=f"keras:{model_path}", batch_size=8,
        progress=False)  # an images store
fit_features(work / "jax_train.h5", work / "clf.pkl", cv=2, grid=[0.1, 1.0, 10.0])
files = sorted(str(p) for p in Path(src).rglob("*.png"))[:5]
rows, manifest = predict_images(work / "clf.pkl", files + [str(work / "missing.png")], top_k=2)
out["predict"] = [[r.label, r.probability, r.error] for r in rows]
out["names"] = manifest["label_names"]

sys.path.insert(0, sys.argv[4])
from tests._scratch_helpers import make_stores, register_tiny
from featx.evaluate import evaluate_network
from featx.train import TrainConfig, train

register_tiny()
stores = make_stores(work / "stores", size=20, n_train=48, n_val=16, n_test=20)
res = train(TrainConfig(model="tinycnn", train=stores["train"], val=stores["val"], out=str(work / "run"), epochs=1,
                        batch_size=16, input_size=16, precise_bn_images=32), verbose=0)
ev = evaluate_network(work / "run", stores["test"], ten_crop=True, batch_size=8, progress=False)
out["train"] = {"epochs": res.epochs, "model": res.model_path.exists(), "strategy": res.strategy,
                "loss": res.last.get("loss")}
out["eval"] = {k: ev.record[k]["rank1"] for k in ("single_crop", "ten_crop")}
out["backend"] = backend_name()
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def tf_model(tmp_path_factory):
    """A tinycnn trained 1 epoch by featx on TensorFlow (model.keras) and a folder of images."""
    from featx.train import TrainConfig, train
    from tests._scratch_helpers import make_stores, register_tiny
    from tests.conftest import color_image, save

    tmp = tmp_path_factory.mktemp("jaxpipe")
    register_tiny()
    stores = make_stores(tmp / "stores", size=20, n_train=48, n_val=16, n_test=8)
    res = train(TrainConfig(model="tinycnn", train=stores["train"], val=stores["val"], out=str(tmp / "tfrun"),
                            epochs=1, batch_size=16, input_size=16, precise_bn_images=0), verbose=0)
    rng = np.random.default_rng(7)
    for c, name in enumerate(["red", "green", "blue"]):
        for i in range(8):
            save(color_image(rng, w=22 + i % 3, h=20, tint=c), tmp / "src" / name / f"{name}_{i}.png")
    return tmp, res.model_path


@pytest.fixture(scope="module")
def jax_run(tf_model):
    tmp, model_path = tf_model
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp / "jax"), str(model_path), str(tmp / "src"), str(ROOT)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=280)
    assert p.returncode == 0, p.stderr[-4000:]
    return tmp, json.loads(p.stdout.strip().splitlines()[-1])


def test_jax_run_never_imports_tensorflow(jax_run):
    _, r = jax_run
    assert r["backend"] == "jax" and r["tensorflow_imported"] is False


def test_features_of_a_tensorflow_trained_model_match_under_jax(jax_run, tf_model):
    from featx.extract import extract
    from featx.store import open_store

    tmp, model_path = tf_model
    extract(tmp / "src", tmp / "tf_src.h5", backbone=f"keras:{model_path}", batch_size=8, progress=False)
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

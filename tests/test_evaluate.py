"""featx evaluate: rank-k against hand computation, every row counted, ten-crop, metrics JSON,
classifiers on features, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.results.metrics import rank_k, read_metrics
from featx.store import StoreWriter, open_store
from tests._scratch_helpers import TINY, make_stores, register_tiny

CLASSES = 7  # > 5, so rank-5 is defined


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from featx.train import TrainConfig, train
    from featx.train.optim import OptimConfig

    register_tiny()
    tmp = tmp_path_factory.mktemp("eval")
    stores = make_stores(tmp, size=20, classes=CLASSES, n_train=70, n_val=14, n_test=37)
    run = tmp / "run"
    train(TrainConfig(model=TINY, train=stores["train"], val=stores["val"], out=str(run), input_size=16, epochs=1,
                      batch_size=16, optim=OptimConfig(lr=0.05)), verbose=0)
    return stores, run


def _model(run):
    import keras

    return keras.saving.load_model(Path(run) / "model.keras")


def _hand_rank(probs, y, k):
    top = np.argsort(-probs, axis=1)[:, :k]
    return float(np.mean([yi in row for yi, row in zip(y, top, strict=True)]))


def test_rank_k_on_a_hand_made_matrix():
    proba = np.array([[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02],
                      [0.1, 0.6, 0.1, 0.1, 0.05, 0.03, 0.02],
                      [0.3, 0.2, 0.1, 0.1, 0.1, 0.15, 0.05],
                      [0.02, 0.03, 0.05, 0.1, 0.1, 0.2, 0.5]])
    y = [0, 2, 6, 0]
    assert rank_k(y, proba, 1) == pytest.approx(1 / 4)  # row 0 only
    assert rank_k(y, proba, 5) == pytest.approx(2 / 4)  # rows 0 and 1 (class 2 is 3rd-5th there)


def test_rank_k_and_every_row_counted_when_n_is_not_a_multiple_of_the_batch(setup, tmp_path):
    from featx.evaluate import evaluate

    stores, run = setup
    model = _model(run)
    with open_store(stores["test"]) as r:
        x, y = r.load()
    assert len(y) % 16 != 0
    probs = model.predict(x[:, 2:18, 2:18].astype(np.float32), verbose=0)
    for batch in (16, 5):
        res = evaluate(run, stores["test"], batch_size=batch, out=tmp_path / f"b{batch}.json", progress=False)
        rec = res.record
        assert rec["data"]["rows"] == 37
        assert int(np.sum(rec["confusion_matrix"])) == 37
        assert rec["classification_report"]["weighted avg"]["support"] == 37
        assert rec["single_crop"]["rank1"] == pytest.approx(_hand_rank(probs, y, 1))
        assert rec["single_crop"]["rank5"] == pytest.approx(_hand_rank(probs, y, 5))
        cm = np.zeros((CLASSES, CLASSES), int)
        for t, p in zip(y, probs.argmax(1), strict=True):
            cm[t, p] += 1
        assert rec["confusion_matrix"] == cm.tolist()


def test_ten_crop_is_the_average_of_the_ten_windows(setup):
    from featx.evaluate import predict_images

    stores, run = setup
    model = _model(run)
    with open_store(stores["test"]) as r:
        x, _ = r.load()
        got, secs = predict_images(model, r, 16, ten_crop=True, batch_size=16, progress=False)
    x = x.astype(np.float32)
    crops = []
    for y0, x0 in ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2)):
        crops.append(x[:, y0 : y0 + 16, x0 : x0 + 16])
    crops += [c[:, :, ::-1] for c in crops]
    ref = np.mean([model.predict(c, verbose=0) for c in crops], axis=0)
    assert got.shape == (37, CLASSES) and secs > 0
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, model.predict(crops[4], verbose=0), atol=1e-6), "not just the center crop"


def test_cli_writes_metrics_json_with_single_and_ten_crop(setup):
    stores, run = setup
    res = CliRunner().invoke(cli, ["evaluate", str(run), "--data", stores["test"], "--ten-crop", "--batch-size", "16",
                                   "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = res.output
    assert "single-crop  rank-1" in out and "ten-crop     rank-1" in out and "class6" in out
    assert f"metrics: {run / 'eval.json'}" in out
    rec = read_metrics(run / "eval.json")
    conf = json.loads((run / "config.json").read_text())
    assert rec["kind"] == "scratch" and rec["method"] == TINY
    assert rec["train_seconds"] == conf["train_seconds"] and rec["history"] == str(run / "history.json")
    assert rec["model"]["params"] == conf["params"]
    assert rec["model"]["size_bytes"] == (run / "model.keras").stat().st_size
    assert set(rec["ten_crop"]) >= {"rank1", "rank5", "seconds", "images_per_second", "seconds_over_single"}
    assert rec["single_crop"]["images_per_second"] > 0 and rec["data"]["label_names"][0] == "class0"


def test_checkpoint_and_custom_output(setup, tmp_path):
    from featx.evaluate import default_output, evaluate
    from featx.train import TrainConfig, train
    from featx.train.optim import OptimConfig

    stores, _ = setup
    run = tmp_path / "ck"
    train(TrainConfig(model=TINY, train=stores["train"], out=str(run), input_size=16, epochs=1, batch_size=32,
                      checkpoint_every=1, optim=OptimConfig(lr=0.05)), verbose=0)
    ckpt = run / "checkpoints" / "epoch_001.keras"
    assert default_output(ckpt) == run / "checkpoints" / "epoch_001.eval.json"
    res = evaluate(ckpt, stores["test"], progress=False)
    assert res.path == run / "checkpoints" / "epoch_001.eval.json" and res.path.exists()
    assert res.record["method"] == TINY and res.record["ten_crop"] is None
    custom = evaluate(run, stores["test"], out=tmp_path / "x" / "m.json", progress=False)
    assert custom.path == tmp_path / "x" / "m.json" and read_metrics(custom.path)["data"]["rows"] == 37


def test_one_line_errors(setup, tmp_path):
    stores, run = setup
    same = make_stores(tmp_path / "same", size=16, classes=CLASSES, n_train=7, n_val=7, n_test=7)
    small = make_stores(tmp_path / "small", size=12, classes=CLASSES, n_train=7, n_val=7, n_test=7)
    other = make_stores(tmp_path / "other", size=20, classes=3, n_train=3, n_val=3, n_test=3)
    runner = CliRunner()

    def err(args):
        r = runner.invoke(cli, ["evaluate", *args])
        assert r.exit_code == 1, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
        return r.output

    assert "--ten-crop needs stored images larger" in err([str(run), "--data", same["test"], "--ten-crop"])
    assert "smaller than the model's 16px input" in err([str(run), "--data", small["test"]])
    assert "trained on" in err([str(run), "--data", other["test"]])
    assert "holds features" in err([str(run), "--data", _features(tmp_path / "f.h5", 4, 3)])
    assert "not a featx train run" in err([str(tmp_path), "--data", stores["test"]])
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.json").write_text((run / "config.json").read_text())
    assert "no model.keras yet" in err([str(unfinished), "--data", stores["test"]])


# ------------------------------------------------------------------------------ classifiers
def _features(path, dim, classes, n=23, seed=0, backbone="resnet50", weights="imagenet"):
    """A features file as featx extract writes it (name/weights attrs + backbone_settings)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = np.random.default_rng(99).normal(0, 3, (classes, dim))  # same classes for every seed
    x = (centers[y] + rng.normal(0, 1, (n, dim))).astype(np.float32)
    settings = {"name": backbone, "weights": weights, "image_size": 224, "preprocessing": "caffe"}
    with StoreWriter(path, kind="features", row_shape=(dim,), dtype=np.float32, paths=[f"r{i}" for i in range(n)],
                     labels=y, label_names=[f"c{c}" for c in range(classes)], config={"seed": seed},
                     attrs={"backbone": backbone, "weights": weights, "backbone_settings": settings},
                     overwrite=True) as w:
        w.add_batch(0, x)
        w.finish()
    return str(path)


@pytest.fixture
def classifier(tmp_path):
    """A classifier exported by featx.fit (the featx fit path) on 8-d, 6-class features."""
    from featx.fit import fit_features

    train = _features(tmp_path / "train.h5", 8, 6, n=60, seed=1)
    _, paths = fit_features(train, tmp_path / "clf.pkl", jobs=1, cv=2)
    return paths["classifier"]


def test_classifier_on_features(classifier, tmp_path):
    from featx.fit import load_classifier

    path = classifier
    test = _features(tmp_path / "test.h5", 8, 6, n=23, seed=2)
    res = CliRunner().invoke(cli, ["evaluate", str(path), "--data", test, "--batch-size", "5", "--no-progress"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"metrics: {tmp_path / 'clf.eval.json'}" in res.output
    rec = read_metrics(tmp_path / "clf.eval.json")
    est, manifest = load_classifier(path)
    with open_store(test) as r:
        x, y = r.load()
    probs = est.predict_proba(x)
    assert rec["kind"] == "transfer" and rec["method"] == manifest["method"] and rec["ten_crop"] is None
    assert rec["data"]["rows"] == 23 and int(np.sum(rec["confusion_matrix"])) == 23
    assert rec["single_crop"]["rank1"] == pytest.approx(_hand_rank(probs, y, 1))
    assert rec["single_crop"]["rank5"] == pytest.approx(_hand_rank(probs, y, 5))
    assert rec["single_crop"]["rank1"] > 0.5  # separable synthetic features
    assert rec["model"]["params"] == 8 * 6 + 6 and rec["model"]["size_bytes"] == Path(path).stat().st_size
    assert rec["train_seconds"] == manifest["fit_seconds"] and rec["model"]["backbone"] == "resnet50"


def test_classifier_mismatches_are_one_line_errors(classifier, tmp_path):
    from featx.evaluate import evaluate

    path = classifier
    with pytest.raises(FeatxError, match="holds 5-d features, the classifier expects 8-d"):
        evaluate(path, _features(tmp_path / "d5.h5", 5, 6))
    with pytest.raises(FeatxError, match="the classifier knows"):
        evaluate(path, _features(tmp_path / "c3.h5", 8, 3))
    with pytest.raises(FeatxError, match="holds vgg16 features"):
        evaluate(path, _features(tmp_path / "vgg.h5", 8, 6, backbone="vgg16"))
    with pytest.raises(FeatxError, match="weights=none"):
        evaluate(path, _features(tmp_path / "untrained.h5", 8, 6, weights="none"))
    with pytest.raises(FeatxError, match="--ten-crop applies to scratch models"):
        evaluate(path, _features(tmp_path / "ok.h5", 8, 6), ten_crop=True)
    img = make_stores(tmp_path / "img", size=8, classes=6, n_train=6, n_val=6, n_test=6)
    with pytest.raises(FeatxError, match="holds images, expected features"):
        evaluate(path, img["test"])

"""``featx fit`` / load / ``featx predict``: accuracy, exports, tamper refusal, CLI, no TensorFlow in fit."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.fit import export_classifier, fit_classifier, load_classifier, side_paths
from featx.results.metrics import read_metrics
from tests._transfer_helpers import separable_features, tiny_model, write_features
from tests.conftest import color_image, save

REPO = Path(__file__).resolve().parents[1]
NAMES = [f"class_{c}" for c in range(7)]


@pytest.fixture(scope="module")
def fitted():
    X, y = separable_features()
    return fit_classifier(X, y, label_names=NAMES, test_size=0.25, seed=0, cv=3, jobs=1)


def test_fit_on_separable_features_scores_high(fitted):
    r = fitted
    assert r.scores["rank1"] >= 0.95 and r.scores["rank5"] == 1.0
    assert (r.n_train, r.n_test, r.feature_dim) == (210, 70, 16)
    assert r.best_params["scaler"] in ("standard", "global")
    assert r.best_params["C"] in r.config["grid"]
    # one warm-started path over 13 values of C (decades and half decades) per scaler
    assert len(r.config["grid"]) == 13 and len(r.cv_results) == 26
    assert {c["scaler"] for c in r.cv_results} == {"standard", "global"}
    best_c = max((c for c in r.cv_results), key=lambda c: c["mean_score"])
    assert best_c["mean_score"] == pytest.approx(r.cv_score)
    assert r.config["grid"][0] == pytest.approx(1e-4) and r.config["grid"][-1] == pytest.approx(1e2)
    assert r.warnings == []  # every fit converged
    assert list(r.estimator.named_steps) == ["scale", "lr"]
    assert r.estimator[0].__class__.__name__ == {"standard": "StandardScaler", "global": "GlobalScaler"}[r.best_params["scaler"]]
    assert r.n_params == 7 * 16 + 7
    assert "class_6" in r.scores["classification_report_text"]


def test_export_writes_pickle_manifest_metrics_and_loads_back(fitted, tmp_path):
    import hashlib

    bb = {"name": "resnet50", "weights": "imagenet", "image_size": 224, "preprocessing": "caffe", "dim": 16}
    paths = export_classifier(fitted, tmp_path / "clf.pkl", backbone=bb, data={"train": "feats/train.h5"})
    assert paths == {"classifier": tmp_path / "clf.pkl", "manifest": tmp_path / "clf.manifest.json",
                     "metrics": tmp_path / "clf.metrics.json"}
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["sha256"] == hashlib.sha256(paths["classifier"].read_bytes()).hexdigest()
    assert manifest["format"] == "pickle" and manifest["label_names"] == NAMES
    assert manifest["backbone"] == bb and manifest["feature_dim"] == 16
    assert {"scikit-learn", "numpy", "featx", "python"} <= set(manifest["versions"])
    assert manifest["scores"]["rank1"] == fitted.scores["rank1"] and manifest["config"]["cv"] == 3

    metrics = read_metrics(paths["metrics"])
    assert metrics["kind"] == "transfer" and metrics["method"] == "resnet50 features + LR"
    assert metrics["model"]["params"] == 7 * 16 + 7
    assert metrics["model"]["size_bytes"] == paths["classifier"].stat().st_size
    assert metrics["single_crop"]["rank1"] == fitted.scores["rank1"] and metrics["ten_crop"] is None
    assert metrics["train_seconds"] == pytest.approx(fitted.fit_seconds, abs=1e-3)
    assert len(metrics["confusion_matrix"]) == 7

    est, loaded = load_classifier(paths["classifier"])
    X, _ = separable_features()
    np.testing.assert_array_equal(est.predict_proba(X), fitted.estimator.predict_proba(X))
    assert loaded == manifest

    with pytest.raises(FeatxError, match="exists; pass --overwrite"):
        export_classifier(fitted, tmp_path / "clf.pkl")


def test_tampered_or_unverifiable_classifier_is_refused(fitted, tmp_path):
    clf = export_classifier(fitted, tmp_path / "clf.pkl")["classifier"]
    blob = bytearray(clf.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    clf.write_bytes(bytes(blob))
    with pytest.raises(FeatxError, match=r"was modified after export: sha256 .* refusing to load it"):
        load_classifier(clf)
    side_paths(clf)[0].unlink()
    with pytest.raises(FeatxError, match="no manifest clf.manifest.json beside"):
        load_classifier(clf)


def test_skops_export_loads_without_pickle(tmp_path):
    X, y = separable_features()
    fitted = fit_classifier(X, y, label_names=NAMES, scalers=["global"], grid=[0.1, 1.0], jobs=1)
    assert type(fitted.estimator[0]).__name__ == "GlobalScaler"
    paths = export_classifier(fitted, tmp_path / "clf.skops", format="skops")
    assert paths["manifest"] == tmp_path / "clf.manifest.json"
    assert zipfile.is_zipfile(paths["classifier"])  # skops' zip archive, not a pickle stream
    with zipfile.ZipFile(paths["classifier"]) as z:
        assert "schema.json" in z.namelist()
    est, manifest = load_classifier(paths["classifier"])
    assert manifest["format"] == "skops"
    X, _ = separable_features()
    np.testing.assert_allclose(est.predict_proba(X), fitted.estimator.predict_proba(X))
    paths["classifier"].write_bytes(paths["classifier"].read_bytes() + b"\0")
    with pytest.raises(FeatxError, match="modified after export"):
        load_classifier(paths["classifier"])


def test_fit_input_errors_are_one_line(tmp_path):
    X, y = separable_features(n_per_class=4, classes=3)
    with pytest.raises(FeatxError, match="cv=5 needs at least 5 training rows per class"):
        fit_classifier(X, y, label_names=["a", "b", "c"], test_size=3, cv=5, jobs=1)
    with pytest.raises(FeatxError, match="need at least 2 classes"):
        fit_classifier(X[y == 0], y[y == 0], label_names=["a", "b", "c"], X_test=X[:2], y_test=y[:2], jobs=1)
    X[0, 0] = np.nan
    with pytest.raises(FeatxError, match="NaN"):
        fit_classifier(X, y, label_names=["a", "b", "c"], jobs=1)


def test_cli_fit_with_test_file_prints_report_and_refuses_images(tmp_path):
    X, y = separable_features(n_per_class=30, classes=7, seed=1)
    train = write_features(tmp_path / "train.h5", X[:150], y[:150], NAMES)
    test = write_features(tmp_path / "test.h5", X[150:], y[150:], NAMES)
    out = tmp_path / "clf.pkl"
    args = ["fit", str(train), "--test", str(test), "-o", str(out), "--grid", "0.01,1", "--cv", "2", "--jobs", "2"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "best C: " in text and "2-fold CV accuracy 1.0000" in text and "held-out set: 60 rows (test file)" in text
    assert "class_6" in text and "rank-1 accuracy: 1.0000" in text and "rank-5 accuracy: 1.0000" in text
    assert "fit time:" in text and "2 scaler(s) x 2 folds, each one warm-started path over up to 2 C values" in text
    assert ("(paths at tol 0.005, each stopped once past its CV peak; the winner refit at --tol 0.001 in L-BFGS "
            "variables preconditioned by the features' top 15 principal directions), + 1 refit; 2 parallel") in text
    assert out.exists() and (tmp_path / "clf.manifest.json").exists() and (tmp_path / "clf.metrics.json").exists()
    assert json.loads((tmp_path / "clf.manifest.json").read_text())["config"]["test"] == str(test.resolve())

    again = CliRunner().invoke(cli, args)  # a rerun with the same parameters is a no-op, as in build and extract
    assert again.exit_code == 0 and "is already complete (same features and parameters" in again.output, again.output
    other = CliRunner().invoke(cli, [*args[:-2], "--jobs", "1", "--seed", "7"])  # --jobs never matters; --seed does
    assert other.exit_code == 1 and "fit with other features or parameters; pass --overwrite" in other.output
    bad_grid = CliRunner().invoke(cli, ["fit", str(train), "-o", str(tmp_path / "x.pkl"), "--grid", "0,abc"])
    assert bad_grid.exit_code == 2

    from featx.store import StoreWriter

    w = StoreWriter(tmp_path / "images.h5", kind="images", row_shape=(4, 4, 3), dtype=np.uint8, paths=["a", "b"],
                    labels=[0, 1], label_names=["x", "y"], config={})
    w.add_batch(0, np.zeros((2, 4, 4, 3), np.uint8))
    w.finish()
    wrong = CliRunner().invoke(cli, ["fit", str(tmp_path / "images.h5"), "-o", str(tmp_path / "y.pkl")])
    assert wrong.exit_code == 1
    assert "holds images, expected features (a file written by featx extract" in wrong.output


def test_featx_fit_never_imports_tensorflow(tmp_path):
    X, y = separable_features(n_per_class=10, classes=3)
    feats = write_features(tmp_path / "f.h5", X, y, ["a", "b", "c"])
    code = (
        "import sys\n"
        "from featx.cli import main\n"
        "try:\n"
        f"    main(['fit', {str(feats)!r}, '-o', {str(tmp_path / 'c.pkl')!r}, '--jobs', '1'])\n"
        "except SystemExit as e:\n"
        "    assert e.code in (0, None), e.code\n"
        "assert 'tensorflow' not in sys.modules, 'featx fit imported tensorflow'\n"
        "assert 'keras' not in sys.modules, 'featx fit imported keras'\n"
        "print('NO-TF-OK')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "NO-TF-OK" in proc.stdout and (tmp_path / "c.pkl").exists()


def test_predict_end_to_end_from_a_saved_classifier(tmp_path):
    """extract (tiny saved Keras model) -> fit -> predict: table, CSV, a bad file on its own line."""
    rng = np.random.default_rng(5)
    src = tmp_path / "imgs"
    for c, name in enumerate(["blue", "green", "red"]):
        for i in range(8):
            save(color_image(rng, tint=2 - c), src / name / f"{name}_{i}.png")
    model = tiny_model(tmp_path / "run" / "model.keras")
    runner = CliRunner()
    feats = tmp_path / "f.h5"
    r = runner.invoke(cli, ["extract", str(src), "-o", str(feats), "-b", f"keras:{model}", "--no-progress"])
    assert r.exit_code == 0, r.output
    clf = tmp_path / "clf.pkl"
    r = runner.invoke(cli, ["fit", str(feats), "-o", str(clf), "--test-size", "6", "--jobs", "1"])
    assert r.exit_code == 0, r.output

    new = tmp_path / "new"
    save(color_image(rng, tint=0), new / "reddish.png")
    save(color_image(rng, tint=2), new / "bluish.jpg")
    (new / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    out_csv = tmp_path / "pred.csv"
    r = runner.invoke(cli, ["predict", str(clf), str(new), "--csv", str(out_csv), "--top-k", "2"])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    row = {Path(line.split()[0]).name: line for line in lines[1:4]}
    assert "ERROR: undecodable image" in row["broken.jpg"] or "ERROR: not an image" in row["broken.jpg"]
    assert row["reddish.png"].split()[1] == "red" and row["bluish.jpg"].split()[1] == "blue"
    assert "2 classified, 1 failed" in r.output
    with open(out_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [Path(t["path"]).name for t in table] == ["bluish.jpg", "broken.jpg", "reddish.png"]
    probs = {Path(t["path"]).name: t for t in table}
    assert probs["reddish.png"]["label"] == probs["reddish.png"]["top1"] == "red"
    assert float(probs["reddish.png"]["p1"]) >= float(probs["reddish.png"]["p2"]) > 0
    assert probs["broken.jpg"]["error"] and not probs["broken.jpg"]["label"]

    blob = bytearray(clf.read_bytes())
    blob[-5] ^= 1
    clf.write_bytes(bytes(blob))
    r = runner.invoke(cli, ["predict", str(clf), str(new)])
    assert r.exit_code == 1 and "was modified after export" in r.output and "Traceback" not in r.output


def test_global_scaler_keeps_relative_feature_sizes():
    from sklearn.preprocessing import StandardScaler

    from featx.fit.scaling import GlobalScaler

    rng = np.random.default_rng(0)
    X = rng.normal(5, 1, (500, 3)) * np.array([10.0, 1.0, 0.1])
    g = GlobalScaler().fit(X)
    Z = g.transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(Z.var(axis=0).mean(), 1.0, rtol=1e-9)  # unit variance on average
    np.testing.assert_allclose(Z.std(axis=0) / Z.std(axis=0)[1], [10, 1, 0.1], rtol=0.1)  # ratios kept
    assert np.allclose(StandardScaler().fit_transform(X).std(axis=0), 1)  # what standard scaling does instead
    assert GlobalScaler().fit(np.ones((4, 2))).scale_ == 1.0  # constant features: no division by zero


def test_global_scaler_small_variances_dtypes_and_width():
    """Killed mutants of fit/scaling.py: a variance below 1 is divided out (not only above 1), float32
    stays float32 (no float64 copy of every feature), integer features come back as floats, and a
    matrix of another width is refused by name."""
    from sklearn.exceptions import NotFittedError

    from featx.fit.scaling import GlobalScaler

    rng = np.random.default_rng(1)
    X = rng.normal(0, 0.1, (400, 4))  # variance 0.01
    g = GlobalScaler().fit(X)
    assert g.scale_ == pytest.approx(np.sqrt(X.var(axis=0).mean()), rel=1e-12) and g.n_features_in_ == 4
    np.testing.assert_allclose(g.transform(X).var(axis=0).mean(), 1.0, rtol=1e-9)
    X32 = X.astype(np.float32)
    Z32 = GlobalScaler().fit(X32).transform(X32)
    assert Z32.dtype == np.float32 and np.allclose(Z32, g.transform(X), atol=1e-5)
    Xi = rng.integers(0, 5, (50, 3))  # e.g. counts stored as integers
    Zi = GlobalScaler().fit(Xi).transform(Xi)
    assert Zi.dtype.kind == "f" and np.allclose(Zi.mean(axis=0), 0) and len(np.unique(Zi)) > 5
    with pytest.raises(ValueError, match="X has 3 features, but GlobalScaler is expecting 4 features"):
        g.transform(X[:, :3])
    with pytest.raises(NotFittedError):
        GlobalScaler().transform(X)


def test_chunked_scaling_helpers_equal_sklearn_on_every_row():
    """fit/scaling.py's chunk-by-chunk helpers (what the search scales the features with) against
    sklearn on the whole matrix: chunks of 7 rows over 30 (the last one short), small variances,
    a constant feature, float32 kept in place."""
    from sklearn.preprocessing import StandardScaler

    from featx.fit.scaling import (
        GlobalScaler,
        column_scale,
        fit_standard,
        global_from_standard,
        rescale_inplace,
        transform_inplace,
    )

    rng = np.random.default_rng(2)
    X = rng.normal(3, 0.2, (30, 4)) * np.array([1.0, 0.5, 2.0, 0.0]) + np.array([0, 1, 2, 7])  # last: constant
    ref = StandardScaler().fit(X)
    sc = fit_standard(X, chunk_rows=7)
    np.testing.assert_allclose(sc.mean_, ref.mean_, rtol=1e-12)
    np.testing.assert_allclose(sc.var_, ref.var_, rtol=1e-9, atol=1e-15)
    g, gref = global_from_standard(sc), GlobalScaler().fit(X)
    assert g.scale_ == pytest.approx(gref.scale_, rel=1e-9) and g.n_features_in_ == 4
    np.testing.assert_allclose(g.mean_, gref.mean_, rtol=1e-12)
    assert column_scale(g).shape == (4,) and np.all(column_scale(g) == g.scale_)  # one divisor per feature
    np.testing.assert_allclose(column_scale(sc), ref.scale_, rtol=1e-9)
    assert global_from_standard(fit_standard(np.full((5, 2), 3.0))).scale_ == 1.0  # no division by zero
    assert sc.n_samples_seen_ == 30 and sc.n_features_in_ == 4 and sc.scale_[3] == 1.0  # constant: scale 1
    with_nan = X.copy()
    with_nan[0, 1] = np.nan  # not finite: sklearn's NaN-aware partial_fit, which skips the NaN
    np.testing.assert_allclose(fit_standard(with_nan, chunk_rows=7).mean_[1], X[1:, 1].mean(), rtol=1e-12)
    for scaler in (sc, g):
        Z = X.astype(np.float32)
        out = transform_inplace(Z, scaler, chunk_rows=7)
        assert out is Z and Z.dtype == np.float32
        np.testing.assert_allclose(Z, scaler.transform(X), rtol=1e-5, atol=1e-5)
    Z = transform_inplace(X.astype(np.float32), sc, chunk_rows=7)
    rescale_inplace(Z, sc, g, chunk_rows=7)  # standard-scaled -> globally scaled, in place
    np.testing.assert_allclose(Z, g.transform(X), rtol=1e-5, atol=1e-5)


def test_binary_problem_like_dogs_vs_cats():
    X, y = separable_features(n_per_class=30, classes=2, dim=32, seed=4)
    r = fit_classifier(X, y, label_names=["cat", "dog"], grid=[0.01, 1.0], jobs=1)
    assert r.scores["rank1"] >= 0.95 and r.scores["rank5"] is None  # rank-5 is n/a with 2 classes
    assert r.n_params == 32 + 1


def test_cli_skops_classifier_predicts_several_and_nested_folders_within_max_pixels(tmp_path, one_gpu):
    """README claims through the CLI: ``featx fit --format skops`` and ``featx predict clf.skops``;
    predict on several folders, one nested; ``--max-pixels`` for extract and predict; with a GPU
    counted, predict's forward pass takes mixed precision + XLA (the features still classify)."""
    import featx.extract

    rng = np.random.default_rng(6)
    src = tmp_path / "imgs"
    for c, name in enumerate(["blue", "green", "red"]):
        for i in range(6):
            save(color_image(rng, tint=2 - c), src / name / f"{name}_{i}.png")
    save(color_image(rng, w=40, h=40, tint=0), src / "red" / "huge.png")  # 1,600 pixels
    model = tiny_model(tmp_path / "model.keras")
    runner = CliRunner()
    feats = tmp_path / "f.h5"
    r = runner.invoke(cli, ["extract", str(src), "-o", str(feats), "-b", f"keras:{model}", "--max-pixels", "1000",
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "skipped red/huge.png: image too large (40x40 = 1,600 pixels > --max-pixels 1,000" in r.output
    clf = tmp_path / "clf.skops"
    r = runner.invoke(cli, ["fit", str(feats), "-o", str(clf), "--format", "skops", "--test-size", "6", "--jobs", "1",
                            "--grid", "0.1,1,10"])
    assert r.exit_code == 0, r.output
    assert zipfile.is_zipfile(clf) and json.loads((tmp_path / "clf.manifest.json").read_text())["format"] == "skops"

    a, b = tmp_path / "new_a", tmp_path / "new_b"
    save(color_image(rng, tint=0), a / "reddish.png")
    save(color_image(rng, tint=2), b / "deeper" / "down" / "bluish.png")  # nested two levels
    save(color_image(rng, w=40, h=40, tint=1), b / "big.png")
    mappers = []
    real = featx.extract.FeatureMapper

    class Recorded(real):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            mappers.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(featx.extract, "FeatureMapper", Recorded)
        r = runner.invoke(cli, ["predict", str(clf), str(a), str(b), "--max-pixels", "1000", "--top-k", "2",
                                "--csv", str(tmp_path / "p.csv")])
    assert r.exit_code == 0, r.output
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = {Path(t["path"]).name: t for t in csv.DictReader(fh)}
    assert sorted(rows) == ["big.png", "bluish.png", "reddish.png"]
    assert rows["reddish.png"]["label"] == "red" and rows["bluish.png"]["label"] == "blue"
    assert "image too large (40x40 = 1,600 pixels > --max-pixels 1,000" in rows["big.png"]["error"]
    assert not rows["big.png"]["label"] and "2 classified, 1 failed" in r.output
    (m,) = mappers
    assert m.mixed_precision is True and m.xla is True  # the GPU defaults reach predict's forward pass

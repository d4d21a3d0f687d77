"""``featx fit`` v2: warm-started C path vs exhaustive GridSearchCV, seeds, --solver sgd (slabs),
--backend ray, end-to-end costs in the report, book-format (foreign) HDF5 files."""

from __future__ import annotations

import json
import re
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.fit import fit_classifier, fit_features
from featx.report import cells
from featx.results.metrics import read_metrics
from featx.store import StoreReader, StoreWriter, open_store
from tests._transfer_helpers import separable_features

GRID = [0.001, 0.01, 0.1, 1.0]


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return train_test_split(X.astype(np.float32), y, test_size=0.3, stratify=y, random_state=0)


def _fit(digits, **kw):
    Xtr, Xte, ytr, yte = digits
    return fit_classifier(Xtr, ytr, label_names=[str(i) for i in range(10)], X_test=Xte, y_test=yte, grid=GRID,
                          scalers=["standard"], cv=3, jobs=2, **kw)


def test_warm_path_search_matches_exhaustive_grid_search_on_digits(digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = digits
    ours = _fit(digits, seed=0)
    gs = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                      {"logisticregression__C": GRID}, cv=StratifiedKFold(3, shuffle=True, random_state=0)).fit(Xtr, ytr)
    assert ours.scores["rank1"] >= gs.score(Xte, yte) - 1e-12
    assert ours.scores["rank1"] > 0.9
    # the CV curve is the exhaustive one, within the solver tolerance
    exhaustive = gs.cv_results_["mean_test_score"]
    assert np.allclose([r["mean_score"] for r in ours.cv_results], exhaustive, atol=0.01)
    assert ours.estimator[-1].coef_.dtype == np.float32  # float32 end to end


def test_successive_halving_matches_exhaustive_grid_search_on_digits(digits, monkeypatch):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from featx.fit.scaling import GlobalScaler
    from featx.fit.search import DEFAULT_GRID

    Xtr, Xte, ytr, yte = digits
    monkeypatch.setattr("featx.fit.tuning.HALVING_MIN_SUBSET", 300)  # a quarter of 1,257 rows: 314
    grid = list(DEFAULT_GRID[::2])  # the decades: 7 values, longer than the 5-value second rung
    ours = fit_classifier(Xtr, ytr, label_names=[str(i) for i in range(10)], X_test=Xte, y_test=yte, cv=3, jobs=2,
                          seed=0, halving=True, grid=grid)
    assert ours.config["search"].startswith("successive halving")
    rows = [r["rows"] for r in ours.cv_results]
    assert rows.count(len(ytr)) <= 5 and min(rows) == 314
    assert "successive halving (a stratified 314 of the 1257 rows" in ours.config["search"]
    # the second rung: the C values the output names around the first rung's best, else the 5 around
    # it (fewer when every fold stopped 2 past its peak: the output says that too)
    window = re.search(r"(\d) C values on all rows, ([0-9.e+-]+)\.\.([0-9.e+-]+), around the first rung's best",
                       ours.config["search"])
    full = [r["C"] for r in ours.cv_results if r["rows"] == len(ytr)]
    best1 = max((r for r in ours.cv_results if r["rows"] == 314), key=lambda r: (r["mean_score"], -r["C"]))["C"]
    if window:
        named = [c for c in grid if float(window[2]) * 0.99 <= c <= float(window[3]) * 1.01]
        assert len(named) == int(window[1]) < 5 and min(named) <= best1 <= max(named)
        assert full == named[: len(full)] and (len(full) == len(named) or "stopped past the CV peak on all rows" in ours.config["search"])
    else:
        i = grid.index(best1)
        assert full[0] == grid[max(0, i - 2)] and (len(full) == 5 or "stopped past the CV peak on all rows" in ours.config["search"])
    # 2 scalers on the subset, each path a prefix of the grid (a path stops 2 C values past its CV
    # peak, skipping the slow large-C fits, and the output says so)
    sub = [r for r in ours.cv_results if r["rows"] == 314]
    for scaler in ("standard", "global"):
        cs = [r["C"] for r in sub if r["scaler"] == scaler]
        assert 2 < len(cs) and cs == grid[: len(cs)]
    assert (len(sub) < 2 * len(grid)) == ("stopped past the CV peak on the first rung" in ours.config["search"])
    # exhaustive: every scaler x every C of the same grid, same folds, same solver settings
    gs = GridSearchCV(Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(max_iter=1000, tol=1e-3))]),
                      {"scale": [StandardScaler(), GlobalScaler()], "lr__C": grid},
                      cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=2).fit(Xtr, ytr)
    # the paths run at a loose tolerance (PATH_TOL) and may pick a neighbouring C: 2 of 540 test rows
    assert ours.scores["rank1"] >= gs.score(Xte, yte) - 2 / 540 - 1e-12


def test_chosen_C_is_reproducible_for_a_seed_and_independent_of_the_backend(digits):
    a = _fit(digits, seed=3)
    b = _fit(digits, seed=3, backend="loky")
    assert a.best_params == b.best_params and a.cv_score == b.cv_score
    assert [r["mean_score"] for r in a.cv_results] == [r["mean_score"] for r in b.cv_results]
    np.testing.assert_array_equal(a.estimator.predict_proba(digits[1]), b.estimator.predict_proba(digits[1]))


def test_library_fit_leaves_the_callers_features_alone(digits):
    Xtr = digits[0].copy()
    fit_classifier(Xtr, digits[2], label_names=[str(i) for i in range(10)], grid=[0.1], scalers=["global"], cv=2, jobs=1)
    np.testing.assert_array_equal(Xtr, digits[0])


# ------------------------------------------------------------------------------ --solver sgd
def _features_file(path, X, y, names, timing=None):
    attrs = {"backbone_settings": {"name": "synthetic", "weights": "none", "image_size": 16,
                                   "preprocessing": "none"}}
    if timing:
        attrs["extract_timing"] = timing
    with StoreWriter(path, kind="features", row_shape=(X.shape[1],), dtype=np.float32,
                     paths=[f"r{i}" for i in range(len(X))], labels=y, label_names=names, config={},
                     attrs=attrs) as w:
        w.add_batch(0, X)
        w.finish()
    return path


def _hard_features(seed: int = 5, k: int = 4, n_per_class: int = 100, dim: int = 40, informative: int = 4):
    """Overlapping classes (~70% accuracy at best) in 4 of 40 columns; the informative columns are
    10^4 times smaller than the noise ones, so nothing learns without a working standard scaler,
    and too small a C underfits while too large a C fits the noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    X = rng.normal(0, 1, (len(y), dim))
    X[:, :informative] += 1.2 * rng.normal(0, 1, (k, informative))[y]
    scale = np.where(np.arange(dim) < informative, 0.01, 100.0)
    return (X * scale + rng.normal(0, 50, dim)).astype(np.float32), y


SGD_GRID = "0.001,0.01,0.1,1,10,100"


def hard_files(tmp_path, n_per_class: int = 200):
    """:func:`_hard_features` as a train file stored in class order (as featx build writes folders)
    and a test file of other rows of the same classes."""
    X, y = _hard_features(n_per_class=n_per_class)  # rows in class order
    names = [f"k{c}" for c in range(4)]
    train = _features_file(tmp_path / "train.h5", X[0::2], y[0::2], names)
    test = _features_file(tmp_path / "test.h5", X[1::2], y[1::2], names)
    return train, test


def test_sgd_streams_slabs_and_matches_the_in_memory_fit(tmp_path, monkeypatch):
    train, test = hard_files(tmp_path)
    grid = [float(c) for c in SGD_GRID.split(",")]
    mem, _ = fit_features(train, tmp_path / "mem.pkl", test=test, solver="lbfgs", jobs=1, cv=3, seed=0, grid=grid,
                          scalers=["standard"])
    assert 0.45 <= mem.scores["rank1"] <= 0.8  # hard (chance: 0.25): a wrong C or scaler shows in the accuracy

    reads = []
    real_read = StoreReader.read_into
    monkeypatch.setattr(StoreReader, "read_into", lambda self, out, a, b: reads.append((a, b)) or real_read(self, out, a, b))
    monkeypatch.setattr(StoreReader, "load", lambda self: pytest.fail("the sgd path loaded the whole file"))
    monkeypatch.setattr(StoreReader, "read", lambda self, *a: pytest.fail("the sgd path read rows into a new array"))
    r = CliRunner().invoke(cli, ["fit", str(train), "--test", str(test), "-o", str(tmp_path / "sgd.pkl"), "--solver", "sgd",
                                 "--slab-rows", "64", "--seed", "0", "--grid", SGD_GRID])
    assert r.exit_code == 0, r.output
    assert "best C:" in r.output and "held-out rows accuracy" in r.output and "softmax heads of one matrix product" in r.output
    assert re.search(r"memory: peak RSS [\d.]+ [KMG]B = .* the backend's first step \(its compiled graph and tensors\) \+ .*slab buffer 10 KB", r.output), r.output  # 64 rows x 40 x 4 bytes
    assert len(reads) > 20 and max(b - a for a, b in reads) <= 64 // 8  # blocks of one slab, never the file
    manifest = json.loads((tmp_path / "sgd.manifest.json").read_text())
    assert manifest["config"]["solver"] == "sgd" and manifest["config"]["slabs_read"] == len(reads)
    assert manifest["estimator"] == "StandardScaler + LogisticRegression"  # what predict, export, finetune load
    # the standard scaler (the global one leaves the informative columns at 1e-4 of the others:
    # chance), C within a decade of the in-memory search's (its validation rows are few), and the
    # in-memory fit's accuracy on the same test file within 6 of its 400 rows
    best = manifest["scores"]["best_params"]
    assert best["scaler"] == "standard"
    assert abs(np.log10(best["C"]) - np.log10(mem.best_params["C"])) <= 1.0 + 1e-9, (best, mem.best_params)
    assert manifest["scores"]["rank1"] >= mem.scores["rank1"] - 6 / 400, (manifest["scores"]["rank1"], mem.scores["rank1"])
    # every C x scaler was a head, scored on the validation rows after every epoch
    heads = {(row["scaler"], row["C"]): row["val_curve"] for row in manifest["cv_results"]}
    assert sorted(heads) == sorted((s, c) for s in ("global", "standard") for c in grid)
    assert all(len(v) == manifest["config"]["epochs"] for v in heads.values())


@pytest.mark.parametrize("solver, flag, value", [("sgd", "--cv", "5"), ("sgd", "--tol", "1e-3"),
                                                  ("lbfgs", "--epochs", "2"), ("lbfgs", "--slab-rows", "64"),
                                                  ("lbfgs", "--learning-rate", "0.1"), ("auto", "--batch-size", "64")])
def test_an_option_of_the_other_solver_is_a_usage_error_not_ignored(tmp_path, solver, flag, value):
    X, y = separable_features(n_per_class=10, classes=2, dim=4, seed=1)
    path = _features_file(tmp_path / "f.h5", X, y, ["a", "b"])
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "c.pkl"), "--solver", solver, flag, value])
    assert r.exit_code == 2, r.output
    assert f"{flag} apply to --solver" in r.output and not (tmp_path / "c.pkl").exists()


# ------------------------------------------------------------------------------ --backend ray
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():  # another module of this worker already started a local Ray: share it
        yield ray
        return
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.timeout(240)
def test_ray_backend_gives_the_same_best_C_as_loky(ray_local):
    X, y = separable_features(n_per_class=30, classes=3, dim=8, seed=2)
    X = X + np.random.default_rng(0).normal(0, 4, X.shape).astype(np.float32)  # overlap: C matters
    kw = dict(label_names=["a", "b", "c"], seed=1, grid=[0.001, 0.01, 0.1, 1.0], scalers=["standard"], cv=3, jobs=2)
    loky = fit_classifier(X, y, backend="loky", **kw)
    ray = fit_classifier(X, y, backend="ray", **kw)
    assert ray.best_params == loky.best_params and ray.cv_score == loky.cv_score
    assert [r["mean_score"] for r in ray.cv_results] == [r["mean_score"] for r in loky.cv_results]


def test_ray_backend_without_ray_is_one_line(monkeypatch, tmp_path):
    X, y = separable_features(n_per_class=10, classes=3, dim=4)
    path = _features_file(tmp_path / "f.h5", X, y, ["a", "b", "c"])
    monkeypatch.setitem(sys.modules, "ray", None)
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "c.pkl"), "--backend", "ray"])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert 'pip install "featx[ray]"' in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "c.pkl"), "--address", "h:1"])
    assert r.exit_code == 2 and "--address needs --backend ray" in r.output


# ------------------------------------------------------------------------------ end-to-end costs
def test_report_transfer_row_counts_extraction_time_and_backbone_params(tmp_path):
    X, y = separable_features(n_per_class=20, classes=3, dim=8, seed=4)
    names = ["a", "b", "c"]
    timing = {"seconds": 234.0, "images": 45, "images_per_second": 0.19, "device": "cpu", "backbone_params": 23_587_712}
    train = _features_file(tmp_path / "train.h5", X[:45], y[:45], names, timing)
    test = _features_file(tmp_path / "test.h5", X[45:], y[45:], names,
                          dict(timing, seconds=78.0, images=15, images_per_second=0.2))
    result, paths = fit_features(train, tmp_path / "clf.pkl", test=test, jobs=1, cv=2, grid=[0.1, 1.0])
    rec = read_metrics(paths["metrics"])
    assert rec["extract"]["seconds"] == 312.0 and rec["extract"]["backbone_params"] == 23_587_712
    c = cells(rec)
    fit_s = rec["train_seconds"]
    assert c["train_time"].startswith(f"{(312 + fit_s) / 60:.1f} min: extract 5.2 min + fit ")
    assert c["params"] == f"{23_587_712 + 27:,} (backbone 23,587,712 + classifier 27)"
    assert c["throughput"].startswith("0.2 img/s from pixels (classifier only ")

    r = CliRunner().invoke(cli, ["evaluate", str(paths["classifier"]), "--data", str(test), "--no-progress"])
    assert r.exit_code == 0, r.output
    ev = cells(read_metrics(tmp_path / "clf.eval.json"))
    assert ev["train_time"] == c["train_time"] and ev["params"] == c["params"]
    assert ev["throughput"].startswith("0.2 img/s from pixels")

    plain = _features_file(tmp_path / "plain.h5", X, y, names)  # no extract_timing: the cells say why
    _, p2 = fit_features(plain, tmp_path / "c2.pkl", jobs=1, cv=2, grid=[1.0])
    c2 = cells(read_metrics(p2["metrics"]))
    assert c2["train_time"].startswith("n/a end to end: features file has no extract_timing")
    assert "fit " in c2["train_time"] and c2["params"].endswith("; classifier 27")


# ------------------------------------------------------------------------------ book-format files
def _book_file(path, X, y, names=None, key="features"):
    """As the book's HDF5DatasetWriter writes it: datasets only, no attributes."""
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=X)
        f.create_dataset("labels", data=y.astype(np.int64))
        if names is not None:
            f.create_dataset("label_names", data=names, dtype=h5py.string_dtype("utf-8"))
    return path


def test_book_features_file_round_trips_through_fit_and_evaluate(tmp_path):
    X, y = separable_features(n_per_class=20, classes=3, dim=6, seed=7)
    train = _book_file(tmp_path / "train.hdf5", X[:45].astype(np.float64), y[:45], ["cat", "dog", "fox"])
    test = _book_file(tmp_path / "test.hdf5", X[45:].astype(np.float64), y[45:], ["cat", "dog", "fox"])
    runner = CliRunner()
    r = runner.invoke(cli, ["fit", str(train), "--test", str(test), "-o", str(tmp_path / "clf.pkl"), "--cv", "2",
                            "--grid", "0.1,1"])
    assert r.exit_code == 0, r.output
    assert f"info: {train} has no featx attributes: reading it as a foreign file (features (45, 6), 3 classes" in r.output
    assert "rank-1 accuracy: 1.0000" in r.output and "dog" in r.output
    r = runner.invoke(cli, ["evaluate", str(tmp_path / "clf.pkl"), "--data", str(test), "--no-progress"])
    assert r.exit_code == 0, r.output
    rec = read_metrics(tmp_path / "clf.eval.json")
    assert rec["single_crop"]["rank1"] == 1.0 and rec["data"]["label_names"] == ["cat", "dog", "fox"]

    unnamed = _book_file(tmp_path / "unnamed.hdf5", X, y)
    with open_store(unnamed, kind="features") as s:
        assert s.foreign and s.label_names == ["0", "1", "2"] and s.paths[:2] == ["row_0", "row_1"]


def test_book_files_with_bad_shapes_are_one_line_errors_and_featx_partials_still_refused(tmp_path):
    X, y = separable_features(n_per_class=5, classes=2, dim=4)
    cases = {
        "rows": (_book_file(tmp_path / "rows.hdf5", X, y[:-1]), "'features' has 10 rows but 'labels' has 9"),
        "3d": (_book_file(tmp_path / "3d.hdf5", X.reshape(10, 2, 2), y), "'features' must be (N, D)"),
        "names": (_book_file(tmp_path / "names.hdf5", X, y, ["only"]), "'label_names' has 1 names"),
        "none": (_book_file(tmp_path / "none.hdf5", X, y, key="other"), "no 'features' or 'images' dataset"),
    }
    for path, msg in cases.values():
        with pytest.raises(FeatxError, match=re.escape(msg)):
            open_store(path, kind="features")
    r = CliRunner().invoke(cli, ["fit", str(cases["rows"][0]), "-o", str(tmp_path / "c.pkl")])
    assert r.exit_code == 1 and "has 10 rows but 'labels' has 9" in r.output and "Traceback" not in r.output
    # a featx run killed before finish(): kind attr present, complete false
    w = StoreWriter(tmp_path / "p.h5", kind="features", row_shape=(4,), dtype=np.float32,
                    paths=[f"r{i}" for i in range(10)], labels=y, label_names=["a", "b"], config={})
    with w:
        w.add_batch(0, X)  # no finish(): the run stops here
        assert (tmp_path / "p.h5.partial").exists()
        with pytest.raises(FeatxError, match="incomplete"):
            open_store(tmp_path / "p.h5.partial", kind="features")
        with pytest.raises(FeatxError, match="does not exist .an unfinished run"):
            open_store(tmp_path / "p.h5", kind="features")


def test_book_images_file_reads_as_uint8_with_a_computed_mean(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 8, 8, 3)).astype(np.float64)  # the book's writer stores float pixels
    path = _book_file(tmp_path / "images.hdf5", pixels, np.array([0, 1, 2, 0, 1, 2]), key="images")
    with open_store(path, kind="images") as r:
        x, y = r.load()
        assert r.foreign and x.dtype == np.uint8 and np.array_equal(x, pixels.astype(np.uint8))
        assert np.allclose(r.mean_rgb, pixels.reshape(-1, 3).mean(axis=0))
        assert [b[0].dtype for b in r.iter_batches(4)] == [np.uint8, np.uint8]
    with pytest.raises(FeatxError, match="holds images, expected features"):
        open_store(path, kind="features")


def test_successive_halving_switches_on_by_itself_at_the_row_threshold():
    """No ``halving=`` given: off below HALVING_MIN_ROWS rows or with a grid no longer than the window."""
    from featx.fit.search import HALVING_MIN_ROWS, HALVING_WINDOW
    from featx.fit.tuning import search

    rng = np.random.default_rng(0)
    n = HALVING_MIN_ROWS
    y = np.arange(n) % 3
    X = (rng.normal(0, 1, (n, 4)) + y[:, None]).astype(np.float32)
    grid = [10.0 ** k for k in range(-3, -3 + HALVING_WINDOW + 1)]  # one longer than the window
    kw = dict(scalers=["standard"], cv=2, jobs=1, seed=0, tol=0.05, max_iter=30)  # the switch, not the fit
    on = search(X, y, grid=grid, **kw)
    assert on.method.startswith("successive halving")
    assert sorted({r["rows"] for r in on.cv_results}) == [2000, n]  # a quarter (at least 2,000), then all
    off = search(X[1:], y[1:], grid=grid, **kw)  # one row short
    assert not off.method.startswith("successive halving") and {r["rows"] for r in off.cv_results} == {n - 1}
    short = search(X, y, grid=grid[:HALVING_WINDOW], **kw)  # the window covers the grid: nothing to halve
    assert not short.method.startswith("successive halving")


# ------------------------------------------------------------------------------ speed on hard data
def _noisy(n=600, seed=0):
    """Overlapping classes: accuracy peaks at a small C and falls past it (label noise + few rows)."""
    rng = np.random.default_rng(seed)
    X, y = separable_features(n_per_class=n // 3, classes=3, dim=40, seed=seed)
    X = X + rng.normal(0, 3.0, X.shape).astype(np.float32)
    flip = rng.random(len(y)) < 0.2
    y = y.copy()
    y[flip] = rng.integers(0, 3, int(flip.sum()))
    return X, y


def test_fold_path_stops_past_the_peak_and_only_truncates_the_full_path():
    from featx.fit.search import DEFAULT_GRID, fold_path

    X, y = _noisy()
    X = (X - X.mean(0)) / X.std(0)
    train, test = np.arange(0, len(y), 2), np.arange(1, len(y), 2)
    kw = dict(tol=1e-3, max_iter=1000)
    full = fold_path(X, y, train, test, list(DEFAULT_GRID), **kw)
    early = fold_path(X, y, train, test, list(DEFAULT_GRID), patience=3, **kw)
    n = len(early[0])
    assert 3 < n < len(DEFAULT_GRID)  # the slow large-C fits are skipped
    assert early[0] == full[0][:n] and early[2] == full[2][:n]  # same warm-started fits, cut short
    assert all(s < max(early[0]) for s in early[0][-3:])  # the 3 last C values all scored below the best
    assert int(np.argmax(full[0])) == int(np.argmax(early[0]))  # the full path's peak was kept


def test_search_path_is_loose_and_the_winner_is_refit_at_tol():
    from sklearn.linear_model import LogisticRegression

    from featx.fit.search import PRECOND_PATH_TOL

    X, y = _noisy(seed=1)
    r = fit_classifier(X, y, label_names=["a", "b", "c"], X_test=X[:30], y_test=y[:30], cv=3, jobs=1, seed=0,
                       tol=1e-5, scalers=["standard"])
    lr = r.estimator[-1]
    assert lr.tol == 1e-5 and f"at tol {PRECOND_PATH_TOL:g}, winner refit at tol 1e-05" in r.config["search"]
    # the refit is the tight solution at the chosen C: what a cold fit at tol 1e-5 finds
    Xs = r.estimator[0].transform(X)
    cold = LogisticRegression(C=r.best_params["C"], tol=1e-5, max_iter=5000).fit(Xs, y)
    np.testing.assert_allclose(lr.predict_proba(Xs), cold.predict_proba(Xs), atol=2e-3)


def test_one_holdout_replaces_the_folds_only_when_its_error_is_below_the_gaps(monkeypatch):
    from featx.fit.search import PathResult, cv_paths
    from featx.fit.tuning import _holdout

    def rung0(scores):
        s = np.array(scores)
        return PathResult(Cs=list(range(len(s))), fold_scores=s[None], mean_scores=s, std_scores=0 * s,
                          fit_seconds=0 * s, n_iter=0 * s[None], best_index=int(s.argmax()), coef_init=(None, None),
                          converged=True)

    steep = rung0([0.5, 0.6, 0.7, 0.8, 0.85])
    share, why = _holdout(np.zeros(30000), steep, 0, 3)
    assert share == pytest.approx(1 / 3)
    assert "1 stratified hold-out of 10000 rows instead of 3 folds" in why and "standard error 0.36 points" in why
    assert _holdout(np.zeros(30000), rung0([0.85, 0.851, 0.852, 0.851, 0.85]), 0, 3) == (None, None)  # flat: folds
    assert _holdout(np.zeros(5000), steep, 0, 3) == (None, None)  # few rows: folds
    X, y = _noisy(seed=2)
    p = cv_paths(X, y, [0.01, 0.1], cv=3, seed=0, jobs=1, holdout=0.25)[""]
    assert p.fold_scores.shape == (1, 2)  # one split, not 3 folds


def test_second_rung_drops_only_the_sides_where_the_first_rung_curve_clearly_fell():
    from featx.fit.search import HALVING_WINDOW, PEAK_MARGIN, PathResult
    from featx.fit.tuning import _window, _window_note

    def rung0(scores):
        s = np.array(scores)
        return PathResult(Cs=list(range(len(s))), fold_scores=s[None], mean_scores=s, std_scores=0 * s,
                          fit_seconds=0 * s, n_iter=0 * s[None], best_index=int(s.argmax()), coef_init=(None, None),
                          converged=True)

    peak, m = 0.85, PEAK_MARGIN
    assert HALVING_WINDOW == 5
    # (lo, width) in a 13-value grid: a side keeps 2 steps unless the C two steps away scored >= m below
    assert _window(rung0([0.7, peak - m, 0.849, peak, 0.849, peak - m, 0.7]), 3, 13) == (2, 3)  # both sides fell
    assert _window(rung0([0.7, peak - m / 2, 0.849, peak, 0.849, peak - m, 0.7]), 3, 13) == (1, 4)  # low side flat
    assert _window(rung0([0.7, peak - m, 0.849, peak, 0.849, peak - m / 2]), 3, 13) == (2, 4)  # high side flat
    assert _window(rung0([0.7, peak - m / 2, 0.849, peak, 0.849, peak - m / 2]), 3, 13) == (1, 5)  # flat: 5 values
    assert _window(rung0([0.7, peak - m, 0.849, peak, 0.849]), 3, 13) == (2, 4)  # the path stopped before i + 2
    assert _window(rung0([0.849, peak, 0.849, 0.7, 0.7]), 1, 13) == (0, 3)  # the grid's end cuts the low side
    assert _window(rung0([0.849, 0.849, 0.849, 0.849, peak]), 4, 5) == (2, 3)  # ... and the high side
    r = rung0([0.7, 0.8, 0.849, peak, 0.849, 0.849])
    note = _window_note([1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1], r, 3, *_window(r, 3, 6))
    assert note == ("4 C values on all rows, 0.01..0.3, around the first rung's best C=0.03 "
                    "(C=0.003 scored 5.00 points below it on the first rung)")

def test_threaded_folds_leave_the_process_warning_state_alone_and_still_report_max_iter():
    """catch_warnings is process-wide and not thread-safe: the folds' threads must not enter it
    (on 5 classes, before featx.fit.multinomial, it left showwarning or the filters changed after 14
    of 20 threaded searches; this binary case did not show the race in 10 tries), and a path that
    hit max_iter is still reported, from n_iter_ (with the warnings silenced, caught warnings would
    say nothing)."""
    import warnings

    from featx.fit.backends import joblib_backend
    from featx.fit.search import cv_paths

    rng = np.random.default_rng(0)  # fits long enough for the threads to overlap (digits' are too short)
    # two classes (one logit; LogisticRegression.fit itself until session 6)
    Xtr = rng.normal(size=(3000, 200)).astype(np.float32)
    ytr = (Xtr[:, :5].sum(axis=1) > 0).astype(int)  # separable: the weakly regularized fits take long
    cv_paths(Xtr, ytr, [0.1], cv=3, seed=0, jobs=1, max_iter=5)  # the imports' own filters first
    show, filters = warnings.showwarning, list(warnings.filters)
    with joblib_backend("threading", jobs=2):  # featx fit's default backend
        for seed in range(8):
            capped = cv_paths(Xtr, ytr, [0.01, 0.1, 1.0, 10.0], cv=3, seed=seed, jobs=2, tol=1e-12, max_iter=30)[""]
            assert warnings.showwarning is show and warnings.filters == filters
            assert not capped.converged and capped.n_iter.max() == 30
        loose = cv_paths(Xtr, ytr, [0.01, 0.1], cv=3, seed=0, jobs=2, tol=1e-2, max_iter=1000)[""]
    assert loose.converged and loose.n_iter.max() < 1000


def test_blocked_multinomial_fit_is_sklearns_fit_on_any_number_of_threads(digits):
    """featx.fit.multinomial minimizes LogisticRegression's own objective (so the refit is the model
    scikit-learn would fit), and its row blocks add up in block order: the same bits on 1 or 3 threads."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from featx.fit import multinomial

    Xtr, Xte, ytr, _ = digits
    sc = StandardScaler().fit(Xtr)
    X, Xt = sc.transform(Xtr).astype(np.float64), sc.transform(Xte)
    keep = ytr != 9  # classes 0..8 (labels need not start at 0 or be contiguous: searchsorted)
    X, y = np.vstack([X[keep]] * 2), np.concatenate([ytr[keep]] * 2) + 1  # > BLOCK_ROWS rows: several blocks
    assert len(y) > 2 * multinomial.BLOCK_ROWS
    ref = LogisticRegression(C=0.05, tol=1e-9, max_iter=5000).fit(X, y)
    coef, intercept, n_iter = multinomial.fit(X, y, ref.classes_, 0.05, tol=1e-9, max_iter=5000)
    assert 0 < n_iter < 5000
    np.testing.assert_allclose(coef, ref.coef_, atol=2e-5)
    np.testing.assert_allclose(intercept - intercept.mean(), ref.intercept_ - ref.intercept_.mean(), atol=2e-5)
    z = Xt @ coef.T + intercept
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), ref.predict_proba(Xt), atol=1e-5)
    X32 = X.astype(np.float32)
    one = multinomial.fit(X32, y, ref.classes_, 0.05, tol=1e-3, max_iter=200, coef=coef, intercept=intercept)
    with multinomial.block_pool(3) as pool:
        three = multinomial.fit(X32, y, ref.classes_, 0.05, tol=1e-3, max_iter=200, coef=coef, intercept=intercept,
                                pool=pool)
    assert one[0].dtype == np.float32 and one[2] == three[2]
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])


def test_binary_fit_is_sklearns_binary_fit_with_one_logit_preconditioned_or_not(digits):
    """Two classes: featx.fit.multinomial minimizes the binary LogisticRegression's objective (one
    logit, HalfBinomialLoss): its loss and gradient are scikit-learn's at any point, plain and
    preconditioned fits reach scikit-learn's coefficients, and WarmPath predicts its labels."""
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.linear_model import LogisticRegression
    from sklearn.linear_model._linear_loss import LinearModelLoss
    from sklearn.preprocessing import StandardScaler

    from featx.fit import multinomial as mn

    Xtr, Xte, ytr, _ = digits
    X = StandardScaler().fit_transform(Xtr).astype(np.float64)
    X, y = np.vstack([X, X[::-1]]), np.where(np.concatenate([ytr, ytr[::-1]]) % 2 == 1, "odd", "even")
    assert len(y) > 2 * mn.BLOCK_ROWS  # several row blocks
    classes, C, n, d = np.array(["even", "odd"]), 0.05, len(y), X.shape[1]
    ref = LogisticRegression(C=C, tol=1e-10, max_iter=5000).fit(X, y)
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.1, size=d + 1)
    loss, grad = mn.objective(X, (y == "odd").astype(np.float64), C, 2)(w)
    sk_loss, sk_grad = LinearModelLoss(HalfBinomialLoss(), fit_intercept=True).loss_gradient(
        w, X, (y == "odd").astype(np.float64), l2_reg_strength=1.0 / (C * n))  # sklearn's mean loss
    assert loss == pytest.approx(sk_loss, rel=1e-10) and grad.shape == (d + 1,)
    np.testing.assert_allclose(grad, sk_grad, rtol=1e-8, atol=1e-12)
    pre = mn.Preconditioner.of(X, rank=16, seed=0)
    for precond in (None, pre):
        coef, intercept, n_iter = mn.fit(X, y, classes, C, tol=1e-9, max_iter=5000, precond=precond)
        assert coef.shape == (1, d) and intercept.shape == (1,) and 0 < n_iter < 5000
        np.testing.assert_allclose(coef, ref.coef_, atol=2e-5)
        np.testing.assert_allclose(intercept, ref.intercept_, atol=2e-5)
    path = mn.WarmPath(X, y, tol=1e-9, max_iter=5000, precond=pre)
    path.fit(C)
    Xs = StandardScaler().fit(Xtr).transform(Xte)
    assert list(path.classes_) == ["even", "odd"]
    np.testing.assert_array_equal(path.predict(Xs), ref.predict(Xs))


def test_scalers_preconditioners_on_parallel_threads_are_the_bits_of_one_after_the_other():
    from featx.fit.multinomial import Preconditioner
    from featx.fit.tuning import _preconditioners

    rng = np.random.default_rng(3)
    Z = (rng.normal(size=(600, 40)) @ rng.normal(size=(40, 40))).astype(np.float32)
    factors = {"standard": None, "global": rng.uniform(0.5, 2.0, 40).astype(np.float32)}
    both = _preconditioners(Z, factors, seed=5, threads=2)
    assert list(both) == ["standard", "global"]
    for name, factor in factors.items():
        alone = Preconditioner.of(Z, seed=5, factor=factor)
        np.testing.assert_array_equal(both[name].Q, alone.Q)
        np.testing.assert_array_equal(both[name].eig, alone.eig)
        assert both[name].tail == alone.tail
    assert not np.allclose(both["standard"].eig, both["global"].eig)  # each scaler its own


def test_preconditioned_fit_reaches_the_same_minimum_in_far_fewer_iterations():
    """The preconditioner only changes the variables L-BFGS walks in: the same objective, the same
    minimum (coefficients and loss), on correlated features in a tenth of the iterations; its maps
    invert each other and its gradient is the objective's gradient in those variables."""
    from featx.fit import multinomial as mn

    rng = np.random.default_rng(0)
    latent = rng.normal(size=(800, 8))
    X = latent @ (3 * rng.normal(size=(8, 48))) + 0.3 * rng.normal(size=(800, 48))  # variances 0.09 .. ~100
    X -= X.mean(axis=0)
    y = np.argmax(latent[:, :4] + 0.8 * rng.normal(size=(800, 4)), axis=1)
    classes = np.arange(4)
    pre = mn.Preconditioner.of(X, rank=8, seed=0)
    assert pre.Q.shape == (48, 8) and np.all(np.diff(pre.eig) <= 0) and 0 < pre.tail < pre.eig[-1]
    plain = mn.fit(X, y, classes, 1.0, tol=1e-6, max_iter=5000)
    fast = mn.fit(X, y, classes, 1.0, tol=1e-6, max_iter=5000, precond=pre)
    f = mn.objective(X, y, 1.0, 4)
    loss = [f(np.concatenate([c.ravel(), b]))[0] for c, b, _ in (plain, fast)]
    assert abs(loss[0] - loss[1]) < 1e-8 and fast[2] * 10 < plain[2], (loss, plain[2], fast[2])
    np.testing.assert_allclose(fast[0], plain[0], atol=1e-4)
    g, to_v, to_w = pre.wrap(f, 1.0, 800, 4, 48)
    w = rng.normal(size=4 * 49)
    np.testing.assert_allclose(to_w(to_v(w)), w, atol=1e-10)
    v, e = to_v(w), 1e-6 * rng.normal(size=4 * 49)
    (lp, gv), lm = g(v + e), g(v - e)[0]
    assert abs((lp - lm) - 2 * e @ gv) < 1e-9 * max(1.0, abs(lp - lm)) + 1e-12  # the chain rule's gradient


def test_folds_sharing_a_block_pool_give_the_bits_of_folds_fitting_alone(digits):
    """The folds' multinomial fits evaluate their row blocks on a shared pool when a thread is idle
    (the last fold of a rung), else in their own thread: the search's results are the same bits."""
    from featx.fit.backends import joblib_backend
    from featx.fit.multinomial import BLOCK_ROWS, block_pool
    from featx.fit.search import cv_paths

    Xtr, _, ytr, _ = digits
    X, y = np.vstack([Xtr] * 2), np.concatenate([ytr] * 2)  # 2,514 rows: several blocks per fold
    assert len(y) * 2 // 3 > 2 * BLOCK_ROWS
    with joblib_backend("threading", jobs=2):
        alone = cv_paths(X, y, [0.01, 0.1, 1.0], cv=3, seed=0, jobs=2)[""]
        with block_pool(2) as pool:
            used, pool_map = [], pool.map
            pool.map = lambda *a, **k: used.append(1) or pool_map(*a, **k)
            shared = cv_paths(X, y, [0.01, 0.1, 1.0], cv=3, seed=0, jobs=2, pool=pool)[""]
            assert pool.running == 0 and used  # the fold left alone did evaluate its blocks on the pool
    np.testing.assert_array_equal(alone.fold_scores, shared.fold_scores)
    np.testing.assert_array_equal(alone.n_iter, shared.n_iter)
    np.testing.assert_array_equal(alone.coef_init[0], shared.coef_init[0])

"""featx inspect: label issues, near-duplicates and leakage on small synthetic features."""

from __future__ import annotations

import csv
import json
import sys

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.inspect import inspect_features, label_issues, normalize, search_pairs
from featx.inspect.duplicates import resolve_engine
from tests._transfer_helpers import write_features

EVIL = "<img src=x onerror=alert(1)>"


def _blobs(seed: int, n: int = 300, classes: int = 5, dim: int = 16, flips: int = 20):
    """Clustered features around the origin (rows of one class are not near-duplicates) and
    ``flips`` rows whose label was changed to another class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (classes, dim))
    y = np.arange(n) % classes
    X = (centers[y] + rng.normal(0, 1, (n, dim))).astype(np.float32)
    flip = rng.choice(n, flips, replace=False)
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, classes, flips)) % classes
    return X, noisy, y, flip


def test_label_issues_rank_the_flipped_rows_first():
    X, noisy, _, flip = _blobs(0)
    res = label_issues(X, noisy, [f"c{k}" for k in range(5)], params={"C": 1.0, "scaler": "standard"}, cv=3, seed=0)
    top = set(res.indices[: len(flip)].tolist())
    # measured: 0.90 here (0.75-1.0 over seeds 0-4); the flagged rows are 90-100% flipped ones
    assert len(top & set(flip.tolist())) / len(flip) >= 0.7
    assert len(set(res.indices.tolist()) & set(flip.tolist())) / len(res.indices) >= 0.8
    # ranked by self-confidence: the out-of-fold probability of the given label, lowest first
    q = res.proba[np.arange(len(noisy)), noisy]
    np.testing.assert_allclose(res.quality, q, rtol=1e-6)
    assert np.all(np.diff(q[res.indices]) >= 0)
    assert res.params["C"] == 1.0 and res.params["source"] == "classifier"


def _planted(seed=0, n=700, dim=24, clump=40):
    """Random rows, with near-copies planted: pairs, and one clump larger than faiss' top-k."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, dim)).astype(np.float32)
    for a, b in zip(range(0, 60, 2), range(1, 60, 2)):
        X[b] = X[a] + rng.normal(0, 0.05, dim)
    base = X[100]
    for k in range(101, 101 + clump):
        X[k] = base + rng.normal(0, 0.02, dim)
    return X


def test_faiss_and_numpy_find_the_same_pairs():
    pytest.importorskip("faiss")
    X = normalize(_planted())
    Q = normalize(_planted(seed=1)[:250])
    Q[:5] = X[200:205]  # cross copies
    kw = {"threshold": 0.97, "block_rows": 96, "tile_rows": 128, "top_k": 8}
    for args in ((X,), (Q, X)):
        f = search_pairs(*args, engine="faiss", **kw)
        n = search_pairs(*args, engine="numpy", **kw)
        assert len(f) == len(n) > 0
        np.testing.assert_array_equal(f.i, n.i)
        np.testing.assert_array_equal(f.j, n.j)
        np.testing.assert_array_equal(f.similarity, n.similarity)
        np.testing.assert_allclose(f.nearest, n.nearest, atol=1e-6)
    within = search_pairs(X, engine="numpy", **kw)
    assert np.all(within.i < within.j) and np.all(within.similarity >= 0.97)
    # the clump of 41 near-copies: every one of its 820 pairs, though faiss keeps 8 per query
    clump = set(range(100, 141))
    got = {(i, j) for i, j in zip(within.i.tolist(), within.j.tolist()) if i in clump and j in clump}
    assert len(got) == 41 * 40 // 2
    assert {(a, a + 1) for a in range(0, 60, 2)} <= set(zip(within.i.tolist(), within.j.tolist()))
    # brute force (float64, the whole matrix) agrees
    X64 = X.astype(np.float64)
    S = X64 @ X64.T
    iu = np.triu_indices(len(X), 1)
    hit = S[iu] >= 0.97
    assert set(zip(iu[0][hit].tolist(), iu[1][hit].tolist())) == set(zip(within.i.tolist(), within.j.tolist()))
    cross = search_pairs(Q, X, engine="numpy", **kw)
    assert {(k, 200 + k) for k in range(5)} <= set(zip(cross.i.tolist(), cross.j.tolist()))


def test_numpy_fallback_when_faiss_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    assert resolve_engine("auto") == "numpy"
    with pytest.raises(FeatxError, match=r'needs faiss-cpu.*pip install "featx\[inspect\]"'):
        resolve_engine("faiss")


def _splits(tmp_path, names=None):
    """train (300 rows, 20 flipped labels, 10 exact copies of test rows, 3 of them relabelled) and test (100)."""
    X, noisy, _, flip = _blobs(0, n=300)
    Xt, yt, _, _ = _blobs(1, n=100, flips=0)
    rng = np.random.default_rng(5)
    copied = rng.choice(100, 10, replace=False)
    Xtr = np.concatenate([X, Xt[copied]])
    ytr = np.concatenate([noisy, yt[copied]])
    ytr[-3:] = (ytr[-3:] + 1) % 5  # conflicting labels on 3 copies
    names = names or [EVIL, "b", "c", "d", "e"]
    train = write_features(tmp_path / "train.h5", Xtr, ytr, names)
    test = write_features(tmp_path / "test.h5", Xt, yt, names)
    return train, test, copied, flip


def test_inspect_finds_leakage_conflicts_and_writes_everything(tmp_path):
    train, test, copied, flip = _splits(tmp_path)
    out = tmp_path / "health"
    r = CliRunner().invoke(cli, ["inspect", str(train), str(test), "-o", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "leakage: 10 of 100 test rows have a near-duplicate in training" in r.output
    assert f"inspect: {out / 'inspect.html'}" in r.output

    dups = list(csv.DictReader((out / "duplicates.csv").open()))
    assert list(dups[0]) == ["split_a", "path_a", "label_a", "split_b", "path_b", "label_b", "similarity", "kind",
                             "labels_differ"]
    cross = [d for d in dups if d["kind"] == "cross-split"]
    assert {(d["path_a"], d["path_b"]) for d in cross} == {(f"img_{c:05d}.jpg", f"img_{300 + k:05d}.jpg")
                                                          for k, c in enumerate(copied)}
    assert all(float(d["similarity"]) >= 0.999 and d["split_a"] == "test" and d["split_b"] == "train" for d in cross)
    differ = {d["path_b"] for d in cross if d["labels_differ"] == "True"}
    assert differ == {f"img_{k:05d}.jpg" for k in (307, 308, 309)}
    within = [d for d in dups if d["kind"] == "within-split"]  # tight blobs: a few same-class pairs reach 0.95
    with h5py.File(train, "r") as f:
        Z = f["features"][:].astype(np.float64)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    S = np.triu(Z @ Z.T, 1)
    assert len(within) == int(np.sum(S >= 0.95)) and all(d["split_a"] == d["split_b"] == "train" for d in within)

    issues = list(csv.DictReader((out / "label_issues.csv").open()))
    assert list(issues[0]) == ["rank", "split", "path", "given_label", "suggested_label", "label_quality"]
    assert [int(x["rank"]) for x in issues] == list(range(1, len(issues) + 1))
    flagged = {int(x["path"][4:9]) for x in issues}
    assert len(flagged & set(flip.tolist())) >= 14  # measured 15 of the 20 flipped, 16 rows flagged
    q = [float(x["label_quality"]) for x in issues]
    assert q == sorted(q) and issues[0]["given_label"] in (EVIL, "b", "c", "d", "e")

    rec = json.loads((out / "inspect.json").read_text())
    assert rec["schema"] == "featx.inspect/1" and rec["engine"] in ("faiss", "numpy")
    te = next(s for s in rec["splits"] if s["name"] == "test")
    assert te["rows_with_duplicate_in_train"] == 10 and te["leaked_rows"] == sorted(copied.tolist())
    assert rec["counts"]["cross-split"] == 10 and rec["counts"]["within-split"] == len(within)
    assert rec["counts"]["labels_differ"] == 3 + sum(d["labels_differ"] == "True" for d in within)
    assert rec["thresholds"]["dup_threshold"] == 0.95 and rec["label_model"]["source"] == "quick search"
    assert sum(rec["nearest"]["counts"]["test"]) == 100 and rec["timing"]["seconds"]["total"] > 0
    assert not (out / ".inspect.partial").exists()

    page = (out / "inspect.html").read_text()
    assert EVIL not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "data:image/png;base64," in page and "labels differ" in page

    # the results are replaced with --overwrite only; a CSV featx did not write never is
    again = CliRunner().invoke(cli, ["inspect", str(train), str(test), "-o", str(out)])
    assert again.exit_code == 1 and "exists; pass --overwrite to replace" in again.output
    again = CliRunner().invoke(cli, ["inspect", str(train), str(test), "-o", str(out), "--overwrite", "--top", "0"])
    assert again.exit_code == 0, again.output
    assert "data:image/png;base64," in (out / "inspect.html").read_text()  # the histogram; no thumbnails
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "duplicates.csv").write_text("my,own\n")
    again = CliRunner().invoke(cli, ["inspect", str(train), str(test), "-o", str(mine), "--overwrite"])
    assert again.exit_code == 1 and "not a file featx wrote" in again.output
    assert (mine / "duplicates.csv").read_text() == "my,own\n"


def test_classifier_accuracy_without_leaked_rows(tmp_path):
    from featx.fit import fit_features

    train, test, copied, _ = _splits(tmp_path, names=list("abcde"))
    fit_features(train, tmp_path / "clf.pkl", test=test, grid=[1.0], cv=3)
    res = inspect_features([train, test], tmp_path / "h", classifier=tmp_path / "clf.pkl", engine="numpy",
                           progress=False)
    acc = next(s for s in res.record["splits"] if s["name"] == "test")["accuracy"]
    from featx.fit import load_classifier, load_features

    est, manifest = load_classifier(tmp_path / "clf.pkl")
    Xt, yt, _, _ = load_features(test)
    right = est.predict(Xt) == yt
    keep = np.ones(len(yt), bool)
    keep[copied] = False
    assert acc["rank1"] == pytest.approx(manifest["scores"]["rank1"]) == pytest.approx(right.mean())
    assert acc["rank1_without_leaked"] == pytest.approx(right[keep].mean()) and acc["rows_without_leaked"] == 90
    assert res.record["label_model"]["C"] == 1.0 and res.record["label_model"]["source"] == "classifier"


def test_thumbnails_come_from_the_images_store(tmp_path):
    from featx.store import StoreWriter

    train, test, _, _ = _splits(tmp_path)
    rng = np.random.default_rng(0)
    with StoreWriter(tmp_path / "imgs.h5", kind="images", row_shape=(20, 20, 3), dtype=np.uint8,
                     paths=[f"img_{i:05d}.jpg" for i in range(310)], labels=np.zeros(310, np.int64),
                     label_names=["x"], config={}) as w:
        w.add_batch(0, rng.integers(0, 255, (310, 20, 20, 3), dtype=np.uint8))
        w.finish()
    res = inspect_features([train, test], tmp_path / "h", images=[tmp_path / "imgs.h5"], top=3, engine="numpy",
                           progress=False)
    page = res.files["html"].read_text()
    # 3 label issues, 3 cross-split and 3 within-split pairs (both sides; the test file's paths name
    # rows of the same store here)
    assert page.count("<img class='thumb'") == 3 + 3 * 2 + 3 * 2 and "no image" not in page


def test_an_interrupted_run_keeps_its_finished_steps(tmp_path, monkeypatch):
    import featx.inspect.api as api

    train, test, _, _ = _splits(tmp_path)
    calls = []
    real = api.search_pairs

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(api, "search_pairs", flaky)
    with pytest.raises(KeyboardInterrupt):
        inspect_features([train, test], tmp_path / "h", engine="numpy", progress=False)
    kept = sorted(p.name for p in (tmp_path / "h" / ".inspect.partial").rglob("*.npz"))
    assert kept == ["out_of_fold.npz", "pairs-0-0.npz"] and not (tmp_path / "h" / "inspect.json").exists()
    monkeypatch.setattr(api, "label_issues", lambda *a, proba=None, **k: pytest.fail("refit") if proba is None
                        else real_label_issues(*a, proba=proba, **k))
    res = inspect_features([train, test], tmp_path / "h", engine="numpy", progress=False)
    assert len(calls) == 4 and res.record["counts"]["cross-split"] == 10  # 2 searches left, 1 kept
    assert not (tmp_path / "h" / ".inspect.partial").exists()


real_label_issues = label_issues


def _run(args):
    r = CliRunner().invoke(cli, ["inspect", *map(str, args), "--no-progress"])
    lines = [x for x in r.output.strip().splitlines() if x]
    return r.exit_code, lines


def test_bad_input_is_one_line(tmp_path):
    X, y, _, _ = _blobs(0, n=60)
    one = write_features(tmp_path / "one.h5", X, np.zeros(60, np.int64), ["only", "other"])
    code, lines = _run([one, "-o", tmp_path / "o1"])
    assert code == 1 and len(lines) == 1 and "1 class ('only')" in lines[0] and "at least 2 classes" in lines[0]

    with h5py.File(tmp_path / "nolabels.h5", "w") as f:
        f["features"] = X
    code, lines = _run([tmp_path / "nolabels.h5", "-o", tmp_path / "o2"])
    assert code == 1 and len(lines) == 1 and "'labels'" in lines[0]

    a = write_features(tmp_path / "train.h5", X, y, list("abcde"))
    b = write_features(tmp_path / "test.h5", X[:, :8], y, list("abcde"),
                       backbone={"name": "synthetic", "weights": "none", "image_size": 16, "preprocessing": "none",
                                 "dim": 8})
    code, lines = _run([a, b, "-o", tmp_path / "o3"])
    assert code == 1 and len(lines) == 1 and "16-d" in lines[0] and "8-d" in lines[0]

    code, lines = _run([a, "-o", tmp_path / "o4", "--train", "nope"])
    assert code == 1 and len(lines) == 1 and "no split named nope" in lines[0]
    r = CliRunner().invoke(cli, ["inspect", str(a), "-o", str(tmp_path / "o5"), "--dup-threshold", "1.5"])
    assert r.exit_code == 2 and "--dup-threshold" in r.output


@pytest.mark.slow
def test_fit_inspect_and_the_report_data_health_section(tmp_path):
    from featx.report import make_report

    train, test, copied, _ = _splits(tmp_path, names=list("abcde"))
    r = CliRunner().invoke(cli, ["fit", str(train), "--test", str(test), "-o", str(tmp_path / "clf.pkl"),
                                 "--grid", "1", "--inspect", str(tmp_path / "health")])
    assert r.exit_code == 0, r.output
    assert "leakage: 10 of 100 test rows have a near-duplicate in training; classifier rank-1" in r.output
    rec = json.loads((tmp_path / "health" / "inspect.json").read_text())
    assert rec["label_model"]["C"] == 1.0 and rec["label_model"]["source"] == "classifier"
    # the same command again: classifier and inspect results reused, nothing rewritten
    mtime = (tmp_path / "health" / "inspect.json").stat().st_mtime_ns
    r2 = CliRunner().invoke(cli, ["fit", str(train), "--test", str(test), "-o", str(tmp_path / "clf.pkl"),
                                  "--grid", "1", "--inspect", str(tmp_path / "health")])
    assert r2.exit_code == 0, r2.output
    assert "already complete" in r2.output and f"{tmp_path / 'health'} is already complete" in r2.output
    assert (tmp_path / "health" / "inspect.json").stat().st_mtime_ns == mtime
    acc = rec["splits"][1]["accuracy"]
    assert acc["rows_without_leaked"] == 90

    r = CliRunner().invoke(cli, ["report", str(tmp_path / "clf.metrics.json"), str(tmp_path / "health"),
                                 "-o", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "data health: synthetic features + LR on test: 10 of 100 rows have a near-duplicate in training" in r.output
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    health = json.loads((tmp_path / "rep" / "report.json").read_text())["health"]
    test_row = next(s for s in health["splits"] if s["split"] == "test")
    assert test_row["leaked_rows"] == 10 and test_row["leaked_share"] == pytest.approx(0.1)
    (a,) = health["accuracy"]
    assert a["method"] == rep["table"][0]["method"] and a["how"] == "featx inspect"
    assert a["reported_rank1"] == pytest.approx(acc["rank1"]) and a["rank1_without_leaked"] == acc["rank1_without_leaked"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Data health" in md and "| test | 100 | no |" in md and "10 (10.00%)" in md
    assert "Data health" in (tmp_path / "rep" / "report.html").read_text()

    # inspect run without the classifier: the report recomputes the same numbers from the files
    inspect_features([train, test], tmp_path / "h2", engine="numpy", progress=False)
    make_report([tmp_path / "clf.metrics.json", tmp_path / "h2" / "inspect.json"], tmp_path / "rep2")
    (b,) = json.loads((tmp_path / "rep2" / "report.json").read_text())["health"]["accuracy"]
    assert b["how"] == "recomputed by featx report" and b["rank1_without_leaked"] == pytest.approx(acc["rank1_without_leaked"])

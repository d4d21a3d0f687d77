"""``featx fit --solver sgd`` (out of core): the softmax heads reach sklearn's optimum at the same C,
``--solver auto`` streams when the features would not fit, memory stays at the slab buffers, and a
seed gives the same classifier. (The accuracy against the in-memory fit and the block reads are in
tests/test_fit_search.py; the JAX backend in tests/test_jax.py.)"""

from __future__ import annotations

import gc
import json
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from tests._transfer_helpers import write_features


def _overlapping(n: int = 300, k: int = 3, dim: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(0, 1, (n, dim)) + 0.8 * rng.normal(0, 1, (k, dim))[y]
    X *= rng.uniform(0.2, 5.0, dim)  # unequal feature scales: the global scaler differs from the standard one
    return X.astype(np.float32), y


@pytest.mark.parametrize("k", [2, 3])
def test_softmax_heads_reach_sklearns_logistic_regression_at_the_same_C(k):
    """Each head (two C values x both scalers) ends at sklearn's LogisticRegression solution for its
    C on its scaler's inputs: the penalty 1 / (C n) per head, twice per column for two classes,
    the global scaler's ratio, and the head read back out of the shared matrix."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from featx.fit.scaling import global_from_standard
    from featx.fit.softmax import SoftmaxHeads

    X, y = _overlapping(k=k)
    n, dim = X.shape
    std = StandardScaler().fit(X)
    scalers = {"standard": std, "global": global_from_standard(std)}
    ratio = {"standard": np.ones(dim), "global": std.scale_ / scalers["global"].scale_}
    heads = [(s, c) for s in ("standard", "global") for c in (0.01, 1.0)]
    epochs, batch = 150, 50
    m = SoftmaxHeads(dim, k, [1 / (c * n) for _, c in heads], [ratio[s] for s, _ in heads], mean=std.mean_,
                     scale=std.scale_, learning_rate=0.05, total_steps=epochs * (n // batch))
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        p = rng.permutation(n)
        for a in range(0, n, batch):
            m.train_step(X[p[a : a + batch]], y[p[a : a + batch]])
    for h, (s, c) in enumerate(heads):
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit(scalers[s].transform(X), y)
        coef, _ = m.head(h)
        if k == 2:
            coef = coef[1:] - coef[:1]  # sklearn's one logit
        err = np.abs(coef - ref.coef_).max() / np.abs(ref.coef_).max()
        assert err < 0.03, (s, c, err, coef, ref.coef_)
    # the strongest penalty shrinks the weights: C really is per head
    assert np.abs(m.head(0)[0]).max() < 0.5 * np.abs(m.head(1)[0]).max()


def _file(tmp_path, n=400, dim=8, k=3, seed=0, name="f.h5"):
    X, y = _overlapping(n=n, k=k, dim=dim, seed=seed)
    return write_features(tmp_path / name, X, y, [f"c{i}" for i in range(k)])


def test_auto_solver_streams_when_the_features_would_not_fit_in_memory(tmp_path, monkeypatch):
    path = _file(tmp_path)
    monkeypatch.setenv("FEATX_FIT_MEMORY", "1K")
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "a.pkl"), "--grid", "0.1,1", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("solver: sgd, out of core (--solver sgd): loading the features would need about "
                               "45 KB, more than the 1 KB FEATX_FIT_MEMORY"), r.output  # 400 x 8 x 4 x 3.5 bytes
    assert "held-out rows accuracy" in r.output and "memory: peak RSS" in r.output
    manifest = json.loads((tmp_path / "a.manifest.json").read_text())
    assert manifest["config"]["solver"] == "sgd" and manifest["config"]["epochs"] == 2
    assert manifest["config"]["solver_choice"] == r.output.splitlines()[0].removeprefix("solver: sgd, ")  # why, kept

    monkeypatch.setenv("FEATX_FIT_MEMORY", "2G")
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "b.pkl"), "--grid", "0.1,1"])
    assert r.exit_code == 0, r.output
    assert "solver:" not in r.output and "-fold CV accuracy" in r.output  # in memory, as ever: nothing to say
    assert json.loads((tmp_path / "b.manifest.json").read_text())["config"]["solver_choice"].startswith("in memory")
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "c.pkl"), "--epochs", "2"])
    assert r.exit_code == 2 and "--epochs apply to --solver sgd only (this run uses --solver lbfgs)" in r.output

    monkeypatch.setenv("FEATX_FIT_MEMORY", "lots")
    r = CliRunner().invoke(cli, ["fit", str(path), "-o", str(tmp_path / "d.pkl")])
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert "FEATX_FIT_MEMORY must be a size such as 2G or 512M. Received: 'lots'" in r.output
    assert not (tmp_path / "d.pkl").exists()


def _traced_peak(path, slab_rows: int, trace: bool = True) -> int:
    from featx.fit import fit_sgd

    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        fit_sgd(path, slab_rows=slab_rows, epochs=1, grid=[1.0], scalers=["standard"], seed=0, batch_size=256)
        return tracemalloc.get_traced_memory()[1] if trace else 0
    finally:
        tracemalloc.stop()


def test_sgd_memory_grows_by_two_slabs_per_slab_not_with_the_file(tmp_path):
    """The traced (NumPy and Python) peak of a fit with 4x larger slabs grows by at most two slabs'
    worth (the reused slab buffer and the validation rows, capped at one slab) of the slab
    difference: no concatenated, permuted or masked slab copies (the old slabs held five or more)."""
    import keras  # noqa: F401 - imported before tracing

    dim = 256
    path = _file(tmp_path, n=3000, dim=dim, k=3)
    _traced_peak(path, 256, trace=False)  # warm: import caches
    small, large = _traced_peak(path, 256), _traced_peak(path, 1024)
    slab_bytes = lambda rows: rows * dim * 4  # noqa: E731
    assert large - small <= 2.25 * (slab_bytes(1024) - slab_bytes(256)), (small, large)


def test_sgd_is_deterministic_for_a_seed(tmp_path):
    from featx.fit import fit_sgd

    path = _file(tmp_path, n=300)
    kw = dict(slab_rows=64, epochs=3, grid=[0.1, 10.0])
    a, b, c = fit_sgd(path, seed=3, **kw), fit_sgd(path, seed=3, **kw), fit_sgd(path, seed=4, **kw)
    np.testing.assert_array_equal(a.estimator[-1].coef_, b.estimator[-1].coef_)
    assert a.best_params == b.best_params and a.scores["rank1"] == b.scores["rank1"]
    assert [r["val_curve"] for r in a.cv_results] == [r["val_curve"] for r in b.cv_results]
    assert not np.array_equal(a.estimator[-1].coef_, c.estimator[-1].coef_)  # the seed orders the minibatches


@pytest.mark.parametrize("k", [2, 4])
def test_sgd_classifier_is_a_logistic_regression_whose_probabilities_are_the_heads_softmax(tmp_path, k):
    """The winner exported as sklearn's LogisticRegression (one logit for two classes): its
    predict_proba is the softmax of the winning head's logits, and dense_head (export, finetune
    --head) folds it like any in-memory fit."""
    from sklearn.linear_model import LogisticRegression

    from featx.fit import dense_head, fit_sgd, head_activation

    X, y = _overlapping(n=240, k=k, dim=5, seed=1)
    path = write_features(tmp_path / "f.h5", X, y, [f"c{i}" for i in range(k)])
    res = fit_sgd(path, slab_rows=64, epochs=2, grid=[0.1, 1.0], seed=0)
    lr = res.estimator[-1]
    assert isinstance(lr, LogisticRegression) and lr.coef_.shape == ((1 if k == 2 else k), 5)
    assert head_activation(res.estimator) == "softmax"
    kernel, bias = dense_head(res.estimator, k)
    z = X @ kernel.astype(np.float64) + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p / p.sum(axis=1, keepdims=True), res.estimator.predict_proba(X), atol=1e-5)
    # the exported model scores the validation rows as the winning Keras head did (a wrong sign or
    # column for two classes would not)
    from featx.fit.sgd import _roles

    val = _roles(y, 0.25, 0, False, 64) == 1
    assert (res.estimator.predict(X[val]) == y[val]).mean() == pytest.approx(res.cv_score, abs=1 / val.sum())
    assert res.cv_score > 1 / k + 0.15  # it learned something


def test_minibatches_cover_every_training_row_once_from_one_reused_buffer():
    """Across slab boundaries (remainders carried over), every row of the wanted role comes at most
    once per epoch, in full batches only (the short last one is dropped: fewer rows than a batch are
    left out), each batch written into the same buffer (no fresh arrays); fewer rows than one batch
    still give that one short batch."""
    from featx.fit.sgd import _batches

    n, dim = 53, 3
    X = np.arange(n * dim, dtype=np.float32).reshape(n, dim)
    y = np.arange(n)
    role = (np.arange(n) % 5 == 0).astype(np.int8)  # every fifth row is held out
    slabs = [(X[a : a + 12], y[a : a + 12], np.arange(a, min(a + 12, n))) for a in range(0, n, 12)]
    seen, sizes, buffers = [], [], set()
    for xb, yb in _batches(iter(slabs), role, 0, 8, np.random.default_rng(0)):
        np.testing.assert_array_equal(xb, X[yb])  # rows and labels stay paired
        seen += yb.tolist()
        sizes.append(len(yb))
        buffers.add(xb.__array_interface__["data"][0])
    wanted = [i for i in range(n) if i % 5]  # 42 rows: 5 full batches, 2 rows left out
    assert set(seen) <= set(wanted) and len(seen) == len(set(seen)) == len(wanted) // 8 * 8
    assert sizes == [8] * (len(wanted) // 8)
    assert len(buffers) == 1
    few = list(_batches(iter(slabs[:1]), role, 0, 16, None))  # 9 wanted rows, batches of 16
    assert [len(b[1]) for b in few] == [9]


def test_validation_rows_are_capped_at_half_a_slab_and_the_memory_bound_adds_up():
    from featx.fit.sgd import _roles, memory_report

    y = np.repeat(np.arange(4), 500)  # 2,000 rows; a quarter is the test set, 10% of the rest validates
    assert int((_roles(y, 0.25, 0, False, 10_000) == 1).sum()) == 150
    small = _roles(y, 0.25, 0, False, 128)
    assert int((small == 1).sum()) == 64 and int((small == 2).sum()) == 500  # half a slab; the test rows stay
    assert np.bincount(y[small == 1], minlength=4).tolist() == [16, 16, 16, 16]  # stratified
    m = memory_report(peak=215, start=100, runtime=10, slab=50, validation=25, heads=5)
    assert m["bound_bytes"] == 100 + 10 + 2 * 50 + 5 and m["data_bytes"] == 105 and m["within_bound"]
    assert not memory_report(peak=216, start=100, runtime=10, slab=50, validation=25, heads=5)["within_bound"]

"""``featx.fit.dense_head``: a fitted scaler + logistic regression as one Dense softmax layer."""

from __future__ import annotations

import numpy as np
import pytest

from featx.errors import FeatxError
from featx.fit import dense_head, full_proba, head_activation
from featx.fit.scaling import GlobalScaler
from tests._transfer_helpers import separable_features


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pipeline(scaler, X, y, C=0.5):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([("scale", scaler), ("lr", LogisticRegression(C=C, max_iter=500))]).fit(X, y)


@pytest.mark.parametrize("scaler", ["standard", "global"])
def test_folded_head_gives_the_pipelines_probabilities(scaler):
    from sklearn.preprocessing import StandardScaler

    X, y = separable_features(n_per_class=20, classes=5, dim=12, seed=3)
    X = X * np.linspace(0.1, 30, X.shape[1], dtype=np.float32) + 7  # uneven scales and offsets
    est = _pipeline(StandardScaler() if scaler == "standard" else GlobalScaler(), X, y, C=0.05)
    kernel, bias = dense_head(est)
    assert kernel.shape == (12, 5) and bias.shape == (5,) and kernel.dtype == np.float32
    got = _softmax(X.astype(np.float64) @ kernel + bias)
    want = est.predict_proba(X)
    assert np.abs(got - want).max() < 1e-5
    assert 0.05 < want.max(axis=1).mean() < 0.999  # not saturated: the comparison means something


def test_binary_and_unseen_classes():
    from sklearn.preprocessing import StandardScaler

    X, y = separable_features(n_per_class=15, classes=3, dim=6, seed=1)
    two = y < 2
    est = _pipeline(StandardScaler(), X[two], y[two], C=0.01)
    kernel, bias = dense_head(est)  # binary: logits (0, z)
    assert kernel.shape == (6, 2)
    assert np.abs(_softmax(X @ kernel + bias) - est.predict_proba(X)).max() < 1e-5
    # a classifier that never saw class 2 of 3: probability 0 there, as full_proba says
    kernel3, bias3 = dense_head(est, n_classes=3)
    got = _softmax(X @ kernel3 + bias3)
    assert np.abs(got - full_proba(est, X, 3)).max() < 1e-5 and got[:, 2].max() == 0.0


def test_one_vs_rest_is_refused_unless_accepted():
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    X, y = separable_features(n_per_class=15, classes=3, dim=6, seed=2)
    est = _pipeline(StandardScaler(), X, y)
    est.steps[-1] = ("lr", SGDClassifier(loss="log_loss", random_state=0).fit(est[0].transform(X), y))
    with pytest.raises(FeatxError, match="one-vs-rest.*--solver lbfgs"):
        dense_head(est)
    kernel, bias = dense_head(est, ovr="softmax")  # same ranking, other probabilities
    assert (np.argmax(X @ kernel + bias, 1) == est.predict(X)).all()
    assert head_activation(est) == "ovr"
    # its probabilities: the per-class sigmoids normalised, i.e. softmax(log_sigmoid(logits))
    z = X.astype(np.float64) @ kernel + bias
    assert np.abs(_softmax(-np.logaddexp(0, -z)) - est.predict_proba(X)).max() < 1e-5
    assert np.abs(_softmax(z) - est.predict_proba(X)).max() > 1e-3  # the plain softmax is not it


def test_head_activation_of_logistic_regressions():
    from sklearn.preprocessing import StandardScaler

    X, y = separable_features(n_per_class=10, classes=3, dim=4, seed=4)
    assert head_activation(_pipeline(StandardScaler(), X, y)) == "softmax"  # multinomial
    assert head_activation(_pipeline(StandardScaler(), X[y < 2], y[y < 2])) == "softmax"  # binary

"""A fitted classifier as a Dense softmax layer: the scaler folded into the kernel and bias.

``featx fit`` exports ``Pipeline([("scale", StandardScaler | GlobalScaler), ("lr", LogisticRegression)])``.
Its probabilities are ``softmax(W ((x - mean) / scale) + b)``, which is one affine map of the raw
features: ``kernel = (W / scale).T`` and ``bias = b - kernel.T @ mean``. :func:`dense_head` returns
that map, so a network ending in ``Dense(C, activation="softmax")`` with these weights gives the
classifier's probabilities on the same features (``featx finetune --head`` starts from it, ``featx
export`` serves it).

* Binary logistic regression (``coef_`` of shape ``(1, D)``, ``p1 = sigmoid(z)``) becomes the two
  logits ``(0, z)``: ``softmax((0, z)) = (1 - sigmoid(z), sigmoid(z))`` exactly.
* Classes the classifier never saw (absent from ``classes_``) get a zero kernel column and a very
  negative bias: probability 0, as :func:`featx.fit.full_proba` gives them.
* One-vs-rest models (``SGDClassifier`` with more than two classes, as ``featx fit --solver sgd``
  wrote before it fitted softmax heads; now it exports a ``LogisticRegression``)
  normalise per-class sigmoids, which no softmax layer reproduces: refused in one line unless
  ``ovr="softmax"`` accepts the softmax of their logits (the same ranking, other probabilities).
  :func:`head_activation` tells them apart: their probabilities are ``softmax(log_sigmoid(logits))``.
"""

from __future__ import annotations

import numpy as np

from featx.errors import FeatxError

#: bias of a class the classifier never predicts (exp underflows to 0 in float32)
ABSENT_BIAS = -1.0e4
OVR = ("refuse", "softmax")


def _steps(estimator) -> tuple[object | None, object]:
    """(scaler or None, linear model) of a fitted pipeline or a bare linear model."""
    steps = [s for _, s in estimator.steps] if hasattr(estimator, "steps") else [estimator]
    final = steps[-1]
    if len(steps) > 2 or not hasattr(final, "coef_") or not hasattr(final, "intercept_"):
        kinds = " + ".join(type(s).__name__ for s in steps)
        raise FeatxError(f"cannot fold a {kinds} into a Dense layer: expected [scaler +] a fitted linear classifier")
    return (steps[0] if len(steps) == 2 else None), final


def _is_ovr(model, n_logits: int) -> bool:
    if n_logits <= 1:
        return False
    name = type(model).__name__
    return name != "LogisticRegression" or getattr(model, "multi_class", "auto") == "ovr"


def head_activation(estimator) -> str:
    """How :func:`dense_head`'s logits (with ``ovr="softmax"``) become ``predict_proba``'s probabilities.

    ``"softmax"`` for a multinomial or binary logistic regression; ``"ovr"`` for a one-vs-rest model
    on more than two classes, whose probabilities are the per-class sigmoids normalised to sum to
    one, i.e. ``softmax(log_sigmoid(logits))`` (what ``featx export`` builds for such a model).
    """
    _, model = _steps(estimator)
    return "ovr" if _is_ovr(model, np.atleast_2d(model.coef_).shape[0]) else "softmax"


def dense_head(estimator, n_classes: int | None = None, *, ovr: str = "refuse") -> tuple[np.ndarray, np.ndarray]:
    """``(kernel (D, C), bias (C,))`` float32 of a Dense softmax layer equal to ``estimator``'s
    ``predict_proba`` (see the module docstring); ``n_classes`` (default: the classes it knows)
    sets ``C``."""
    if ovr not in OVR:
        raise ValueError(f"ovr must be one of {OVR}. Received: {ovr!r}")
    scaler, model = _steps(estimator)
    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    classes = np.asarray(getattr(model, "classes_", np.arange(max(2, coef.shape[0]))), dtype=np.int64)
    if coef.shape[0] == 1:  # binary: logits (0, z)
        if len(classes) != 2:
            raise FeatxError(f"a binary linear model must know 2 classes. Received classes {classes.tolist()}")
        coef = np.concatenate([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    elif _is_ovr(model, coef.shape[0]) and ovr == "refuse":
        raise FeatxError(
            f"{type(model).__name__} is one-vs-rest: its probabilities are normalised sigmoids, which a softmax "
            "layer cannot reproduce; fit the classifier with featx fit --solver lbfgs (multinomial)"
        )
    if coef.shape[0] != len(classes):
        raise FeatxError(f"the classifier has {coef.shape[0]} rows of coefficients for {len(classes)} classes")
    if scaler is not None:
        from featx.fit.scaling import column_scale

        mean = getattr(scaler, "mean_", None)
        mean = np.zeros(coef.shape[1]) if mean is None else np.asarray(mean, dtype=np.float64)
        scale = column_scale(scaler) if hasattr(scaler, "scale_") else np.ones(coef.shape[1])
        scale = np.where(scale == 0, 1.0, scale)  # sklearn's own rule for constant features
        coef = coef / scale[None, :]
        intercept = intercept - coef @ mean
    n = int(n_classes) if n_classes is not None else int(classes.max()) + 1
    if classes.min() < 0 or classes.max() >= n:
        raise FeatxError(f"the classifier predicts classes {classes.tolist()}, outside 0..{n - 1}")
    kernel = np.zeros((coef.shape[1], n), dtype=np.float64)
    bias = np.full(n, ABSENT_BIAS, dtype=np.float64)
    kernel[:, classes] = coef.T
    bias[classes] = intercept
    return kernel.astype(np.float32), bias.astype(np.float32)

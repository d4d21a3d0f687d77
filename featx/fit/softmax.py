"""Many multinomial logistic regressions trained at once on minibatches (Keras, any backend).

:class:`SoftmaxHeads` holds ``n_heads`` softmax regressions over the same ``D`` inputs as one
small Keras model: ``Normalization`` (the standard scaler's mean and scale) then one
``Dense(n_heads * K)``, so a minibatch costs one matrix product forward and one backward, whatever
the number of heads. Head ``h`` minimises sklearn's ``LogisticRegression`` objective divided by
``C_h * n_train``::

    mean_i CE(softmax(W_h^T x_i + b_h), y_i) + 1 / (2 C_h n_train) * ||W_h||^2   (b_h not penalised)

on its own scaler's inputs ``x``, so ``C`` means what it means in the in-memory fit. Two classes:
sklearn fits one logit ``w``; a two-column softmax reaches the same model with ``w = W_1 - W_0``,
and its penalty equals ``||w||^2 / 2`` only with twice the per-column weight (at the optimum
``W_0 = -W_1``), which is what is used.

All heads see the standardised inputs ``z`` (unit variance per feature). A head on the ``global``
scaler of :mod:`featx.fit.scaling` (one divisor for every feature) sees ``x = z * r`` with a
per-feature ratio ``r``; its weights are kept as ``V = r * W`` (so ``z @ V = x @ W``) and its
penalty as ``||V / r||^2``: the same model and objective, one product for every scaler, and Adam
steps on weights of one scale (the standardised ones), which converges in far fewer epochs than
steps on ``W`` (measured on the 60k x 2048 set of ``scripts/bench_fit.py --ooc``).

The penalty is the Dense layer's kernel regularizer, the loss a per-head cross-entropy in
``keras.ops``, the optimizer ``keras.optimizers.Adam`` with a ``CosineDecay`` schedule, and the
steps ``Model.train_on_batch``: compiled by Keras for TensorFlow, JAX or PyTorch, and run on a GPU
when the backend has one. Adam rather than AdamW: AdamW's decoupled decay would make the optimum
depend on the learning rate, not on ``C`` alone.
"""

from __future__ import annotations

import numpy as np


class SoftmaxHeads:
    """``n_heads`` softmax regressions (``K`` classes, ``D`` features) trained together.

    ``penalties``: one L2 weight per head (``1 / (C * n_train)``); ``ratios``: one ``(D,)``
    factor per head from the standardised inputs to the head's own (all ones for the standard
    scaler). ``mean`` and ``scale`` standardise the raw inputs inside the model.
    """

    def __init__(self, dim: int, n_classes: int, penalties, ratios, *, mean, scale, learning_rate: float,
                 total_steps: int):
        import keras

        ops = keras.ops
        self.keras = keras
        self.dim, self.k, self.h = int(dim), int(n_classes), len(penalties)
        lam = np.repeat(np.asarray(penalties, np.float64) * (2.0 if self.k == 2 else 1.0), self.k)
        R = np.repeat(np.stack([np.asarray(r, np.float64) for r in ratios], axis=1), self.k, axis=1)
        self._R = R.astype(np.float32)  # numpy: only needed to read a head out
        pen = ops.convert_to_tensor((lam[None, :] / (R * R)).astype(np.float32))
        h, k = self.h, self.k

        class _PerColumnL2(keras.regularizers.Regularizer):
            def __call__(self, w):
                return 0.5 * ops.sum(pen * ops.square(w))

        def heads_loss(y_true, y_pred):
            """Per row: the sum over heads of each head's cross-entropy (Keras averages the rows)."""
            logp = ops.log_softmax(ops.reshape(y_pred, (-1, h, k)), axis=-1)
            onehot = ops.expand_dims(ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), k), 1)
            return -ops.sum(logp * onehot, axis=(1, 2))

        scale = np.asarray(scale, np.float64)
        self.model = keras.Sequential([
            keras.Input((self.dim,), dtype="float32"),
            keras.layers.Normalization(mean=np.asarray(mean, np.float32), variance=(scale * scale).astype(np.float32)),
            keras.layers.Dense(h * k, kernel_initializer="zeros", kernel_regularizer=_PerColumnL2(), name="heads"),
        ])
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps), alpha=0.0)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss=heads_loss)
        self.steps = 0
        self._snapshot = None

    def train_step(self, x: np.ndarray, y: np.ndarray) -> None:
        """One optimizer step on the minibatch ``(x, y)`` (raw features, class indices)."""
        self.model.train_on_batch(x, y.astype(np.int32))
        self.steps += 1
        self._snapshot = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``(N, n_heads)`` predicted class of every head.

        The model's own forward pass (standardise, one product) in NumPy, on the weights as of the
        last step (read once per step, not per call): a compiled Keras predict function would cost
        the backend another traced graph (about 40 MB resident under TensorFlow) for a product
        NumPy does as fast."""
        if getattr(self, "_snapshot", None) is None:
            import keras

            norm = self.model.layers[0]
            mean = keras.ops.convert_to_numpy(norm.mean).astype(np.float32).reshape(-1)
            std = np.sqrt(keras.ops.convert_to_numpy(norm.variance).astype(np.float32).reshape(-1))
            W, b = (np.asarray(v, np.float32) for v in self.model.get_layer("heads").get_weights())
            self._snapshot = (mean, np.maximum(std, keras.backend.epsilon()), W, b)
        mean, std, W, b = self._snapshot
        z = np.asarray(x, np.float32) - mean  # one temporary, standardised in place
        z /= std
        logits = z @ W + b
        return logits.reshape(len(x), self.h, self.k).argmax(axis=-1)

    def head(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        """``(coef (K, D), intercept (K,))`` of head ``h`` on its own scaler's inputs (float64)."""
        W, b = (np.asarray(v, np.float64) for v in self.model.get_layer("heads").get_weights())
        cols = slice(h * self.k, (h + 1) * self.k)
        return (W[:, cols] / self._R[:, cols]).T, b[cols]

    @property
    def nbytes(self) -> int:
        """Bytes of the weights, Adam's two moments and the penalty matrix (float32)."""
        return 4 * 4 * (self.dim + 1) * self.h * self.k

"""The mapper: numpy batches of images -> backbone features, one forward-pass code path everywhere.

:class:`FeatureMapper` is the callable-class protocol of Ray Data's ``map_batches``: it is built
from the JSON-able backbone ``settings`` (cheap to pickle and ship to a worker), builds the
backbone once per worker on first use, and maps ``{"index", "image"}`` to ``{"index",
"features"}``. The local runner drives the same object through :meth:`FeatureMapper.iter_features`,
which dispatches batch ``k+1`` before reading back batch ``k`` when ``overlap`` is on (a GPU).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


class FeatureMapper:
    """Backbone features of uint8/float RGB 0..255 batches.

    Parameters
    ----------
    settings : the backbone settings a features file records (``name``, ``weights``,
        ``image_size``, ...): the backbone is rebuilt from them with
        :func:`~featx.backbones.backbone.backbone_from_settings` (recorded file hashes are checked).
    mixed_precision, xla : from :func:`featx.runtime.accel.resolve_accel`.
    batch_size : with XLA, shorter batches are zero-padded to it so the compiled program is reused.
    backbone : an already built :class:`~featx.backbones.backbone.Backbone` to use in this process
        (it is not pickled; a worker rebuilds from ``settings``).
    """

    def __init__(self, settings: dict, *, mixed_precision: bool = False, xla: bool = False,
                 batch_size: int = 32, backbone=None):
        self.settings = dict(settings)
        self.mixed_precision = bool(mixed_precision)
        self.xla = bool(xla)
        self.batch_size = int(batch_size)
        self._backbone = backbone
        self._fn = None

    # ---------------------------------------------------------------- pickling: settings only
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_backbone"] = state["_fn"] = None
        return state

    # ---------------------------------------------------------------- the backbone, built once
    def setup(self) -> FeatureMapper:
        """Build the backbone and its compiled function (once; later calls return at once)."""
        if self._fn is None:
            if self._backbone is None:
                from featx.backbones.backbone import backbone_from_settings

                self._backbone = backbone_from_settings(self.settings, mixed_precision=self.mixed_precision)
            self._fn = self._backbone.feature_function(xla=self.xla)
        return self

    @property
    def backbone(self):
        return self.setup()._backbone

    @property
    def dim(self) -> int:
        return int(self.settings.get("dim") or self.backbone.dim)

    def count_params(self) -> int:
        return int(self.backbone.model.count_params())

    # ---------------------------------------------------------------- the forward pass
    def dispatch(self, images):
        """Start the forward pass of one batch (a numpy array or tensor); returns a pending result."""
        self.setup()
        n = int(images.shape[0])
        if self.xla and n < self.batch_size:  # one shape: the compiled program is reused
            images = np.asarray(images)
            images = np.pad(images, [(0, self.batch_size - n), (0, 0), (0, 0), (0, 0)])
        return self._fn(images), n

    def warmup(self) -> None:
        """Trace (and with XLA compile) the forward pass on a blank batch of the run's shape."""
        size = int(self.settings["image_size"])
        self.collect(self.dispatch(np.zeros((self.batch_size, size, size, 3), np.uint8)))

    @staticmethod
    def collect(pending) -> np.ndarray:
        """Read a dispatched batch back: float32 ``(n, dim)``."""
        from featx.runtime.backend import to_numpy

        out, n = pending
        return to_numpy(out)[:n].astype(np.float32, copy=False)

    def __call__(self, batch: dict) -> dict:
        """``{"index": (B,), "image": (B, H, W, 3)}`` -> ``{"index": (B,), "features": (B, dim)}``."""
        images = np.asarray(batch["image"])
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected RGB images of shape (B, H, W, 3). Received: image.shape={images.shape}")
        return {"index": np.asarray(batch["index"], dtype=np.int64), "features": self.collect(self.dispatch(images))}

    def iter_features(self, dataset: Iterable, *, overlap: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
        """Yield ``(indices, features, reasons)`` for each ``(index, image, reason)`` batch, in order.

        ``overlap`` dispatches batch ``k+1`` before reading back batch ``k`` (on a GPU the two
        overlap; on a CPU the call is synchronous, so it would only delay each result).
        """
        pending = None
        for idx, images, reasons in dataset:
            job = (idx, self.dispatch(images), reasons)
            if not overlap:
                yield _materialize(*job)
                continue
            if pending is not None:
                yield _materialize(*pending)
            pending = job
        if pending is not None:
            yield _materialize(*pending)


def _materialize(idx, pending, reasons):
    reasons = reasons.numpy() if hasattr(reasons, "numpy") else reasons
    return (
        np.asarray(idx).astype(np.int64),
        FeatureMapper.collect(pending),
        [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r) for r in reasons],
    )

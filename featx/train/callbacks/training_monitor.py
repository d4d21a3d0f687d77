"""``TrainingMonitor``: history JSON + loss/accuracy curves after every epoch.

As in the book, the history is reloaded when training starts and trimmed to the epoch training
starts at, so a resumed run (``--resume``, or ``--from-checkpoint ... --initial-epoch E``) keeps
the curve of the epochs before it and never duplicates one. Besides Keras' logs, every epoch
records the learning rate it started with and its wall time in seconds (their sum is the training time).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import keras

from featx.utils import atomic_write_bytes, atomic_write_json, read_json


def _current_lr(model) -> float | None:
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    try:
        return float(keras.ops.convert_to_numpy(opt.learning_rate))
    except Exception:  # pragma: no cover - an exotic optimizer without a readable rate
        return None


class TrainingMonitor(keras.callbacks.Callback):
    """Write ``json_path`` (dict of per-epoch lists) and ``fig_path`` (PNG) at every epoch end.

    Args:
        fig_path: PNG of loss and accuracy curves (train and validation), or None.
        json_path: history JSON: ``{"epoch": [1, 2, ...], "loss": [...], "accuracy": [...],
            "val_loss": [...], "val_accuracy": [...], "lr": [...], "seconds": [...]}``.
        title: figure title.
    """

    def __init__(self, fig_path: str | os.PathLike | None, json_path: str | os.PathLike, title: str = ""):
        super().__init__()
        if json_path is None:
            raise ValueError("TrainingMonitor needs a json_path. Received: None")
        self.fig_path = None if fig_path is None else Path(fig_path)
        self.json_path = Path(json_path)
        self.title = title
        self.history: dict[str, list] = {}
        self._started = False
        self._t0 = 0.0
        self._lr: float | None = None

    def _load(self, start_epoch: int) -> None:
        history: dict[str, list] = {}
        if self.json_path.exists():
            try:
                history = read_json(self.json_path)
            except (OSError, ValueError):
                history = {}
        self.history = {k: list(v[:start_epoch]) for k, v in history.items() if isinstance(v, list)}

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:  # the first epoch of this fit(): after BackupAndRestore set it
            self._load(epoch)
            self._started = True
        self._lr = _current_lr(self.model)
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._t0
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
        row["lr"] = self._lr
        row["seconds"] = round(seconds, 4)
        n = len(self.history.get("epoch", []))
        for k, v in row.items():
            self.history.setdefault(k, [None] * n).append(v)
        for v in self.history.values():  # a key missing this epoch (e.g. no validation)
            if len(v) < n + 1:
                v.append(None)
        atomic_write_json(self.json_path, self.history)
        if self.fig_path is not None:
            atomic_write_bytes(self.fig_path, plot_history(self.history, self.title))


def plot_history(history: dict, title: str = "") -> bytes:
    """PNG bytes of loss (left) and accuracy (right) per epoch, train and validation."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), dpi=100)
    epochs = history.get("epoch", [])
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            vals = history.get(key)
            if vals and any(v is not None for v in vals):
                pts = [(e, v) for e, v in zip(epochs, vals, strict=False) if v is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", markersize=3,
                        label="validation" if key.startswith("val_") else "train")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def load_history(path: str | os.PathLike) -> dict:
    """A history JSON written by :class:`TrainingMonitor` (empty dict when missing)."""
    p = Path(path)
    return read_json(p) if p.exists() else {}


def best_epoch(history: dict, after: int = 0, upto: int | None = None) -> tuple[int | None, float | None]:
    """(1-based epoch, value) of the first maximum of ``val_accuracy`` (ModelCheckpoint's ``>``)
    over the epochs ``after < epoch <= upto``."""
    vals = history.get("val_accuracy") or []
    epochs = history.get("epoch") or []
    best = (None, None)
    for e, v in zip(epochs, vals, strict=False):
        if v is None or e <= after or (upto is not None and e > upto):
            continue
        if best[1] is None or v > best[1]:
            best = (e, v)
    return best

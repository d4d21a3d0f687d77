"""The layout of a ``featx train`` run folder, and reading one back.

::

    RUN_DIR/
      config.json        parameters, label names, means, parameter count, training time, status
      mean.json          the RGB means subtracted (also a layer inside model.keras)
      history.json       per-epoch loss/accuracy/val_*, learning rate, seconds
      curves.png         loss and accuracy curves
      model.keras        the trained model (inference: raw 0..255 RGB in, probabilities out)
      checkpoints/       epoch_NNN.keras every N epochs (with optimizer state)
      backup/            Keras BackupAndRestore state of an unfinished run (removed at the end)
      eval.json          written by featx evaluate
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featx.errors import FeatxError
from featx.utils import read_json

CONFIG_SCHEMA = "featx.train/1"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike) -> RunDir:
        return cls(Path(path))

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def mean(self) -> Path:
        return self.root / "mean.json"

    @property
    def history(self) -> Path:
        return self.root / "history.json"

    @property
    def curves(self) -> Path:
        return self.root / "curves.png"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    @property
    def eval(self) -> Path:
        return self.root / "eval.json"

    def backup_epoch(self) -> int | None:
        """Epochs completed according to the BackupAndRestore state, or None when there is none."""
        meta = self.backup / "training_metadata.json"
        if not meta.exists():
            return None
        try:
            return int(read_json(meta)["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def read_config(self) -> dict:
        """``config.json`` of a run (raises a FeatxError when missing or not a featx run)."""
        if not self.config.exists():
            raise FeatxError(f"{self.root} is not a featx train run (no config.json); run featx train first")
        try:
            cfg = read_json(self.config)
        except (OSError, ValueError) as e:
            raise FeatxError(f"cannot read {self.config}: {e}") from None
        if not isinstance(cfg, dict) or cfg.get("schema") != CONFIG_SCHEMA:
            raise FeatxError(f"{self.config} is not a featx train config (schema {CONFIG_SCHEMA})")
        return cfg


def save_inference_model(model, path: str | os.PathLike) -> int:
    """Save ``model`` without its optimizer (what evaluate, extract and predict load) atomically to
    ``path``; returns its size in bytes. A failure leaves the previous file (if any) untouched."""
    import keras

    from featx.outputs import write_error

    path = Path(path)
    inference = keras.Model(model.inputs, model.outputs, name=model.name)
    tmp = path.with_name(f".{path.stem}.partial.keras")
    try:
        inference.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except OSError as e:  # disk full ...: one line
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    return path.stat().st_size


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a featx train ``config.json``."""
    p = Path(path)
    return p.is_dir() and (p / "config.json").exists()

"""``EpochCheckpoint``: save the whole model every N epochs (the book's EpochCheckpoint).

Each checkpoint is a complete ``.keras`` file with the optimizer state, so
``featx train --from-checkpoint CKPT --initial-epoch E --lr NEW`` can restart from it. Keras'
``ModelCheckpoint`` counts batches, not epochs, when asked for "every N" and writes in place; this
callback saves at absolute epoch numbers (``epoch % N == 0``, also after a resume) and writes
atomically (temporary file, then rename), so a checkpoint at its final path is always whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras


class EpochCheckpoint(keras.callbacks.Callback):
    """Save ``directory/epoch_{epoch:03d}.keras`` after every ``every``-th epoch (1-based).

    Args:
        directory: folder for the checkpoints (created when needed).
        every: save when the 1-based epoch number is a multiple of ``every``.
        keep: keep only the newest ``keep`` checkpoints (None: keep all).
    """

    def __init__(self, directory: str | os.PathLike, every: int = 5, keep: int | None = None):
        super().__init__()
        if int(every) < 1:
            raise ValueError(f"every must be >= 1 epoch. Received: every={every}")
        if keep is not None and int(keep) < 1:
            raise ValueError(f"keep must be >= 1 or None. Received: keep={keep}")
        self.directory = Path(directory)
        self.every = int(every)
        self.keep = keep

    def path_for(self, epoch: int) -> Path:
        """Checkpoint path of 1-based ``epoch``."""
        return self.directory / f"epoch_{epoch:03d}.keras"

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        if done % self.every:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_for(done)
        tmp = final.with_name(f".{final.stem}.partial.keras")
        self.model.save(tmp, overwrite=True)
        os.replace(tmp, final)
        if self.keep:
            for old in sorted(self.directory.glob("epoch_*.keras"))[: -self.keep]:
                old.unlink(missing_ok=True)

"""``--tensorboard DIR``: Keras' own ``TensorBoard`` callback, with a one-line error when the
package is missing (TensorFlow 2.21 no longer installs it: ``pip install 'featx[tensorboard]'``).

Epoch summaries (loss, accuracy, learning rate, train and validation) go to ``DIR/train`` and
``DIR/validation``; ``tensorboard --logdir DIR`` shows them while the run goes on. A resumed run
(or the second phase of ``featx finetune``) continues the same curves at its epoch numbers.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from featx.errors import ParameterError


def require_tensorboard() -> None:
    """A one-line :class:`ParameterError` (``tensorboard``) when the tensorboard package is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ParameterError("tensorboard", "`tensorboard` needs the tensorboard package: pip install 'featx[tensorboard]'")


def tensorboard_callback(log_dir: str | os.PathLike):
    """``keras.callbacks.TensorBoard`` writing epoch summaries to ``log_dir`` (no graph, no profiling)."""
    import keras

    require_tensorboard()
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return keras.callbacks.TensorBoard(log_dir=str(log_dir), write_graph=False, update_freq="epoch")

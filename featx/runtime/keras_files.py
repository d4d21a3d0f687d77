"""Load a saved Keras model, or say in one line why the file is not one.

Keras 3 answers a corrupt or truncated ``.keras`` file with ``File not found ... Please ensure the
file is an accessible .keras zip file`` even when the file is there; :func:`load_keras_model`
checks the container first (a ``.keras`` file is a zip archive, a legacy ``.h5`` an HDF5 file) and
names the real problem.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from featx.errors import FeatxError


def check_keras_file(path: str | os.PathLike) -> Path:
    """Raise a one-line :class:`FeatxError` unless ``path`` exists and has a Keras model's container."""
    p = Path(path)
    if not p.exists():
        raise FeatxError(f"{p} does not exist")
    if p.is_dir():
        raise FeatxError(f"{p} is a folder, not a saved Keras model (.keras)")
    suffix = p.suffix.lower()
    if suffix == ".keras" and not zipfile.is_zipfile(p):
        size = p.stat().st_size
        raise FeatxError(
            f"{p} is not a readable Keras model: a .keras file is a zip archive and this one is not "
            f"({'empty' if size == 0 else f'{size} bytes, truncated or another kind of file'})"
        )
    if suffix in (".h5", ".hdf5"):
        import h5py

        if not h5py.is_hdf5(p):
            raise FeatxError(f"{p} is not a readable Keras model: not an HDF5 file (truncated or another kind of file)")
    return p


def load_keras_model(path: str | os.PathLike, *, compile: bool = False):
    """``keras.saving.load_model`` with one-line errors that say what is wrong with the file."""
    import keras

    p = check_keras_file(path)
    try:  # custom objects of the scratch architectures, when installed
        import scratch_models  # noqa: F401
    except ImportError:  # pragma: no cover
        pass
    try:
        return keras.saving.load_model(p, compile=compile)
    except Exception as e:  # noqa: BLE001 - keras raises ValueError/OSError/TypeError/KeyError...
        text = str(e).strip()
        msg = text.splitlines()[0][:300] if text else type(e).__name__
        raise FeatxError(f"{p} is not a readable Keras model ({type(e).__name__}: {msg})") from None

"""Read an export folder back: :func:`load_exported` for ``featx predict OUT_DIR``.

Nothing is unpickled: ``model.keras`` (JSON config + HDF5 weights, loaded with Keras'
``safe_mode``, which refuses ``Lambda`` layers), the SavedModel (a protobuf graph), ONNX and
TFLite files are data. The model file's sha256 is checked against ``export.json`` before it is
loaded (a damaged or swapped file is refused), and its label count against ``labels``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from featx.errors import FeatxError
from featx.export.formats import FILES, FORMATS, Runner, sha256_path

#: the format ``featx predict`` runs when the folder holds several (Keras first: any backend)
PREFERENCE = ("keras", "savedmodel", "onnx", "tflite")


def is_export_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder holding a featx ``export.json``."""
    from featx.export.api import EXPORT_JSON

    p = Path(path)
    return p.is_dir() and (p / EXPORT_JSON).is_file()


def read_export(path: str | os.PathLike) -> dict:
    """``export.json`` of an export folder (one-line errors when missing or not featx's)."""
    from featx.export.api import EXPORT_JSON, SCHEMA
    from featx.utils import read_record

    p = Path(path) / EXPORT_JSON
    if not p.is_file():
        raise FeatxError(f"{path} has no {EXPORT_JSON}: not a featx export folder (write one with featx export)")
    record = read_record(p, SCHEMA, "export record")
    names = record.get("label_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise FeatxError(f"{p} has no list of label_names")
    if not isinstance(record.get("formats"), dict) or not record["formats"]:
        raise FeatxError(f"{p} lists no exported formats")
    return record


@dataclasses.dataclass
class ExportedModel:
    """An export folder, ready to classify uint8 RGB images at ``image_size``."""

    root: Path
    record: dict
    format: str
    runner: Runner

    @property
    def label_names(self) -> list[str]:
        return list(self.record["label_names"])

    @property
    def image_size(self) -> int:
        return int(self.record["input"]["image_size"])

    @property
    def resize(self) -> str:
        return str(self.record["input"].get("resize", "aspect"))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``(N, C)`` of uint8 images ``(N, S, S, 3)``."""
        images = np.asarray(images)
        size = self.image_size
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise FeatxError(f"expected uint8 images of shape (N, {size}, {size}, 3). Received: {images.shape}")
        return self.runner(images)


def load_exported(path: str | os.PathLike, *, format: str | None = None, batch_size: int = 32) -> ExportedModel:
    """The model of an export folder, its file verified against ``export.json`` (module docstring)."""
    root = Path(path)
    record = read_export(root)
    have = [f for f in PREFERENCE if f in record["formats"]]
    if format is not None:
        if format not in FORMATS:
            raise FeatxError(f"format must be one of {', '.join(FORMATS)}. Received: {format!r}")
        if format not in record["formats"]:
            raise FeatxError(f"{root} holds {', '.join(have)}, not {format}")
        fmt = format
    else:
        fmt = next((f for f in have if _usable(f)), None)
        if fmt is None:
            raise FeatxError(f"{root} holds {', '.join(have)}; none can run here (onnx needs onnxruntime)")
    entry = record["formats"][fmt]
    file = root / FILES[fmt]
    if not file.exists():
        raise FeatxError(f"{file} is missing; the export folder is incomplete: export it again")
    digest = sha256_path(file)
    if entry.get("sha256") != digest:
        raise FeatxError(
            f"{file} was modified after export: sha256 {digest[:16]}... does not match export.json's "
            f"{str(entry.get('sha256'))[:16]}...; refusing to load it"
        )
    try:
        runner = Runner(fmt, file, batch_size=batch_size)
    except FeatxError:
        raise
    except Exception as e:  # noqa: BLE001 - Keras/TF/onnxruntime raise many kinds on a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise FeatxError(f"cannot load {file}: {type(e).__name__}: {first}") from None
    return ExportedModel(root, record, fmt, runner)


def _usable(fmt: str) -> bool:
    if fmt == "onnx":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
    if fmt == "savedmodel":
        from featx.runtime.backend import is_tensorflow

        return is_tensorflow()
    return True

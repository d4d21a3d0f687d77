"""``featx export``: one folder with a deployable model, checked against featx's own path.

::

    OUT_DIR/
      savedmodel/     serving_default (uint8 images) and predict_bytes (encoded images) signatures
      model.onnx      --format onnx
      model.tflite    --format tflite
      model.keras     built-in Keras layers only
      labels.txt      one class name a line, in output order
      export.json     labels, input size, preprocessing, source and its sha256, versions, formats
                      (file, sha256, size) and the parity measured for each

:func:`export_model` builds everything in a hidden partial folder beside ``OUT_DIR`` (under the
output's lock), runs every written format on sample rows (``check_images``, else a deterministic
synthetic batch) and compares its probabilities with the source's own path
(:mod:`featx.export.source`); only when every format is within tolerance is the partial folder
renamed to ``OUT_DIR``. A failed check leaves nothing at ``OUT_DIR``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import os
import shutil
import time
from pathlib import Path

import numpy as np

from featx.errors import FeatxError, OutputExistsError
from featx.export.formats import (
    FILES,
    Runner,
    check_available,
    parse_formats,
    sha256_path,
    size_bytes,
    versions,
)

SCHEMA = "featx.export/1"
EXPORT_JSON = "export.json"
LABELS_TXT = "labels.txt"
#: max abs difference of probabilities allowed for float32 formats (SavedModel, ONNX, .keras)
DEFAULT_TOLERANCE = 1e-4
#: TFLite runs its own kernels (XNNPACK), which sum in another order: a looser bound, still float32
DEFAULT_TFLITE_TOLERANCE = 1e-3
#: rows of the synthetic parity batch (half noise, half smooth images)
SYNTHETIC_ROWS = 16
#: at most this many --check-images are decoded for the parity check
MAX_CHECK_IMAGES = 64


@dataclasses.dataclass
class ExportResult:
    out_dir: Path
    record: dict  # the content of export.json

    @property
    def formats(self) -> list[str]:
        return list(self.record["formats"])

    @property
    def parity(self) -> dict:
        return self.record["parity"]


def synthetic_images(size: int, rows: int = SYNTHETIC_ROWS, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 batch: noise images and smooth blocky ones (half each)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (rows - rows // 2, size, size, 3), dtype=np.uint8)
    cell = max(1, size // 4)
    low = rng.integers(0, 256, (rows // 2, -(-size // cell), -(-size // cell), 3), dtype=np.uint8)
    smooth = np.repeat(np.repeat(low, cell, axis=1), cell, axis=2)[:, :size, :size]
    return np.concatenate([noise, smooth])


def _check_rows(check_images, size: int, resize: str, limit: int) -> tuple[np.ndarray, list[str], list[dict]]:
    """Decode the check images with featx's own rule: ``(images, paths, skipped)``."""
    from featx.data.decode import ImageDecodeError, load_image
    from featx.data.discover import list_image_files

    paths, missing = list_image_files(list(check_images))
    skipped = list(missing)
    images, used = [], []
    for p in paths[:limit]:
        try:
            images.append(load_image(p, size, resize))
            used.append(p)
        except ImageDecodeError as e:
            skipped.append({"path": p, "reason": str(e)})
    if not images:
        raise FeatxError(f"no decodable image in --check-images {', '.join(map(str, check_images))}")
    return np.stack(images), used, skipped


@contextlib.contextmanager
def _exact_float32():
    """TensorFloat-32 off while parity is measured (on Ampere+ GPUs it rounds float32 matmuls to 10 bits)."""
    import tensorflow as tf

    exp = tf.config.experimental
    before = exp.tensor_float_32_execution_enabled()
    exp.enable_tensor_float_32_execution(False)
    try:
        yield
    finally:
        exp.enable_tensor_float_32_execution(before)


def _compare(got: np.ndarray, want: np.ndarray) -> dict:
    if got.shape != want.shape:
        return {"max_abs_diff": None, "top1_agreement": 0.0, "shape": list(got.shape)}
    return {
        "max_abs_diff": float(np.abs(got.astype(np.float64) - want).max()) if got.size else 0.0,
        "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean()) if len(got) else 1.0,
    }


def _encode_png(images: np.ndarray) -> list[bytes]:
    import cv2

    return [cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))[1].tobytes() for img in images]


#: encoded formats the SavedModel's predict_bytes decodes
_BYTES_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _partial(out: Path) -> Path:
    return out.with_name(f".{out.name}.partial")


def _swap_in(partial: Path, out: Path) -> None:
    """Rename the finished folder into place (an older export is moved away first, then deleted)."""
    old = out.with_name(f".{out.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def export_model(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    formats=None,
    check_images=None,
    tolerance: float = DEFAULT_TOLERANCE,
    tflite_tolerance: float = DEFAULT_TFLITE_TOLERANCE,
    batch_size: int = 32,
    overwrite: bool = False,
    progress: bool | None = None,
) -> ExportResult:
    """Export ``source`` (a ``featx fit`` classifier or a ``featx train``/``finetune`` run) to ``out_dir``.

    ``formats``: a list or comma-separated string of ``savedmodel``, ``onnx``, ``tflite``,
    ``keras`` (default ``savedmodel,keras``). ``check_images``: image files or folders for the
    parity check (default: a synthetic batch). Raises :class:`~featx.errors.FeatxError` in one
    line when a format's packages are missing (before any work), when the source is refused
    (tampered, not featx's), or when a format's probabilities differ from featx's by more than
    ``tolerance`` (``tflite_tolerance`` for TFLite): nothing is then left at ``out_dir``.
    """
    from tqdm.auto import tqdm

    from featx.export.source import open_source
    from featx.outputs import (
        check_not_input,
        check_overwritable,
        check_writable,
        output_lock,
        write_error,
    )

    fmts = parse_formats(formats)
    for name, value in (("tolerance", tolerance), ("tflite_tolerance", tflite_tolerance)):
        if not (isinstance(value, (int, float)) and 0 < float(value) < 1):
            raise FeatxError(f"{name} must be a number between 0 and 1. Received: {value!r}")
    check_available(fmts)
    out = Path(out_dir)
    checks = [str(c) for c in (check_images or [])]
    check_not_input(out, source, *checks, contains=True)
    partial = _partial(out)
    with output_lock(out):
        if os.path.lexists(out):
            if not overwrite:
                raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
            check_overwritable(out)
        if partial.exists():  # a run interrupted earlier (we hold the lock: nobody else's)
            shutil.rmtree(partial)
        check_writable(partial, folder=True)
        t0 = time.perf_counter()
        try:
            partial.mkdir(parents=True)  # from here on, removed unless renamed into place
            src = open_source(source, batch_size=batch_size)
            if checks:
                sample, used, skipped = _check_rows(checks, src.image_size, src.resize, MAX_CHECK_IMAGES)
                sample_kind = f"{len(used)} check images (featx's decode, {src.resize} resize)"
            else:
                sample, used, skipped = synthetic_images(src.image_size), [], []
                sample_kind = f"{len(sample)} synthetic images (seeded noise and smooth blocks)"
            record = _write_all(src, partial, fmts, sample, used, sample_kind, skipped,
                                tolerance=float(tolerance), tflite_tolerance=float(tflite_tolerance),
                                batch_size=batch_size, bar=tqdm(total=len(fmts), desc="export", unit="format",
                                                                disable=(not progress) if progress is not None else None))
            record["seconds"]["total"] = round(time.perf_counter() - t0, 3)
            from featx.utils import atomic_write_json, atomic_write_text

            atomic_write_text(partial / LABELS_TXT, "".join(n.replace("\n", " ") + "\n" for n in src.label_names))
            atomic_write_json(partial / EXPORT_JSON, record)
            _swap_in(partial, out)
        except BaseException as e:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(e, OSError) and not isinstance(e, FeatxError):
                raise write_error(partial, e) from None
            raise
    return ExportResult(out, record)


def _write_all(src, partial: Path, fmts, sample, used, sample_kind, skipped, *, tolerance, tflite_tolerance,
               batch_size, bar) -> dict:
    from featx.export.formats import write_keras, write_onnx, write_savedmodel, write_tflite

    size = src.image_size
    seconds, written = {}, {}
    tflite_source = None
    with bar, _exact_float32():
        want = src.reference(sample).astype(np.float64)
        for fmt in fmts:
            bar.set_postfix_str(fmt)
            path = partial / FILES[fmt]
            t = time.perf_counter()
            with _one_line(f"writing {fmt} failed"):
                if fmt == "keras":
                    info = write_keras(src.network, path)
                elif fmt == "savedmodel":
                    info = write_savedmodel(src.network, path, size=size, resize=src.resize)
                elif fmt == "onnx":
                    info = write_onnx(src.network, path, size=size)
                else:  # tflite converts the SavedModel's serving_default signature
                    sm = partial / FILES["savedmodel"]
                    if not sm.exists():
                        tflite_source = partial / ".tflite-savedmodel"
                        write_savedmodel(src.network, tflite_source, size=size, resize=src.resize)
                        sm = tflite_source
                    info = write_tflite(sm, path)
            seconds[fmt] = round(time.perf_counter() - t, 3)
            written[fmt] = {"path": FILES[fmt], **info}
            bar.update(1)
        if tflite_source is not None:
            shutil.rmtree(tflite_source, ignore_errors=True)
        parity, failed = {}, []
        for fmt in fmts:
            with _one_line(f"the written {fmt} model does not run"):
                runner = Runner(fmt, partial / FILES[fmt], batch_size=batch_size)
                got = runner(sample)
            row = _compare(got, want)
            row["tolerance"] = tflite_tolerance if fmt == "tflite" else tolerance
            row["passed"] = row["max_abs_diff"] is not None and row["max_abs_diff"] <= row["tolerance"]
            parity[fmt] = row
            if fmt == "savedmodel":
                with _one_line("the SavedModel's predict_bytes signature does not run"):
                    parity["predict_bytes"] = _bytes_parity(runner, sample, used, want, tolerance)
                if not parity["predict_bytes"]["passed"]:
                    failed.append("predict_bytes")
            if not row["passed"]:
                failed.append(fmt)
            del runner
    if failed:
        worst = ", ".join(
            f"{f} {_fmt(parity[f]['max_abs_diff'])} > {parity[f]['tolerance']:g}" for f in failed
        )
        raise FeatxError(
            f"parity check failed: probabilities differ from featx's own path ({worst}; max abs difference "
            f"on {len(sample)} rows); nothing was written"
        )
    for fmt in fmts:
        path = partial / FILES[fmt]
        written[fmt].update(sha256=sha256_path(path), size_bytes=size_bytes(path))
    return {
        "schema": SCHEMA,
        "featx_version": versions()["featx"],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "label_names": list(src.label_names),
        "labels_file": LABELS_TXT,
        "input": {"name": "images", "dtype": "uint8", "shape": [None, size, size, 3], "color": "RGB",
                  "range": "0..255", "image_size": size, "resize": src.resize},
        "output": {"name": "probabilities", "dtype": "float32", "shape": [None, len(src.label_names)]},
        "preprocessing": src.preprocessing,
        "source": src.details,
        "versions": versions(),
        "formats": written,
        "parity": {
            "sample": sample_kind, "rows": len(sample), "skipped_check_images": skipped[:20],
            "reference": src.details["reference"], "precision": "float32 (TensorFloat-32 off)",
            **parity,
        },
        "seconds": seconds,
    }


@contextlib.contextmanager
def _one_line(what: str):
    """A converter's or runtime's exception as one FeatxError line (OS errors pass: disk full...)."""
    try:
        yield
    except (FeatxError, OSError, KeyboardInterrupt):
        raise
    except Exception as e:  # noqa: BLE001 - TF, tf2onnx, onnxruntime and LiteRT raise many kinds
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise FeatxError(f"{what}: {type(e).__name__}: {first}; nothing was written") from None


def _fmt(x) -> str:
    return "n/a (wrong output shape)" if x is None else f"{x:.3g}"


def _bytes_parity(runner, sample, used, want, tolerance) -> dict:
    """predict_bytes on PNG-encoded sample rows (lossless, at the input size: must equal the reference)
    and, for check images, on the files' own bytes (top-1 agreement with featx's decode)."""
    got = runner.predict_bytes(_encode_png(sample))
    row = {"png_at_input_size": _compare(got, want), "tolerance": tolerance}
    row["max_abs_diff"] = row["png_at_input_size"]["max_abs_diff"]
    row["passed"] = row["max_abs_diff"] is not None and row["max_abs_diff"] <= tolerance
    files = [(i, p) for i, p in enumerate(used) if Path(p).suffix.lower() in _BYTES_SUFFIXES]
    if files:
        try:
            got = runner.predict_bytes([Path(p).read_bytes() for _, p in files])
            idx = [i for i, _ in files]
            row["check_image_files"] = {"rows": len(files), **_compare(got, want[idx])}
        except Exception as e:  # noqa: BLE001 - a file TensorFlow cannot decode: recorded, not fatal
            row["check_image_files"] = {"rows": len(files), "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    return row

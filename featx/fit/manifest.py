"""Integrity of an exported classifier: what the file says about itself, checked against its manifest.

A classifier is two files: ``clf.pkl`` (or ``clf.skops``) and ``clf.manifest.json``. Each vouches
for the other:

* the manifest carries the sha256 of the classifier file: an edited or swapped file is refused
  before it is deserialized;
* the classifier carries its own label names, feature settings and feature dimension
  (:func:`stamp`, attributes ``featx_label_names_``, ``featx_feature_settings_``,
  ``featx_feature_dim_`` on the estimator, inside the hashed bytes): an edited manifest
  (renamed or missing labels, another backbone or image size) is refused on load.

How the file is deserialized is decided from its own bytes (:func:`sniff_format`: skops files are
zip archives, pickles start with the protocol opcode), never from the editable manifest: a pickle
served as ``clf.skops``, or described as skops by its manifest, is refused and never unpickled.
Unpickling still runs code: the sha256 check cannot vouch for a manifest an attacker rewrote
together with the pickle. Only load pickles from people you trust; ``--format skops`` loads
without running code.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

from featx import __version__
from featx.errors import FeatxError

#: Classifier file formats (``featx fit --format``) and the default.
FORMATS = ("pickle", "skops")
DEFAULT_FORMAT = "pickle"
#: featx's own estimator types that a skops file may hold (plain data, no code runs on load).
SKOPS_TRUSTED = ("featx.fit.scaling.GlobalScaler",)
#: Feature settings that must agree between a classifier and the features or images it scores.
CHECKED_SETTINGS = ("name", "weights", "image_size", "preprocessing", "weights_sha256", "model_sha256", "preset_handle")

ZIP_MAGIC = b"PK\x03\x04"


def side_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``clf.pkl`` -> ``(clf.manifest.json, clf.metrics.json)``."""
    p = Path(path)
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(stem + ".manifest.json"), p.with_name(stem + ".metrics.json")


def stamp(estimator, *, label_names, settings: dict | None, feature_dim: int) -> None:
    """Record what the classifier was fit on inside the estimator itself (so inside its sha256)."""
    estimator.featx_label_names_ = [str(n) for n in label_names]
    estimator.featx_feature_settings_ = dict(settings) if settings else None
    estimator.featx_feature_dim_ = int(feature_dim)


def sniff_format(blob: bytes) -> str | None:
    """``"skops"`` (a zip archive), ``"pickle"`` (protocol 2 or later) or ``None``, from the bytes alone."""
    if blob.startswith(ZIP_MAGIC):
        return "skops"
    if len(blob) >= 2 and blob[0] == 0x80 and 2 <= blob[1] <= pickle.HIGHEST_PROTOCOL:
        return "pickle"
    return None


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest beside classifier ``path`` (one-line errors when missing or unreadable)."""
    manifest_path, _ = side_paths(path)
    if not manifest_path.is_file():
        raise FeatxError(
            f"no manifest {manifest_path.name} beside {path}: featx loads only classifiers whose sha256 it can "
            "check (unpickling runs code); re-export it with featx fit"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as e:
        raise FeatxError(f"cannot read manifest {manifest_path}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str):
        raise FeatxError(f"{manifest_path} is not a featx classifier manifest (no sha256)")
    return manifest


def _deserialize(p: Path, blob: bytes, manifest: dict):
    fmt = sniff_format(blob)
    claimed = manifest.get("format")
    if fmt is None:
        raise FeatxError(f"{p} is neither a pickle nor a skops file (its first bytes are {blob[:4]!r}); refusing it")
    if fmt == "pickle" and (claimed != "pickle" or p.suffix.lower() == ".skops"):
        said = "its name says skops" if p.suffix.lower() == ".skops" else f"its manifest says {claimed!r}"
        raise FeatxError(
            f"{p} is a pickle but {said}; refusing to unpickle it (unpickling runs code): "
            "re-export it with featx fit --format skops"
        )
    if fmt == "pickle":
        try:
            return pickle.loads(blob)  # noqa: S301 - sha256 verified against the manifest, bytes and claims agree
        except (ModuleNotFoundError, AttributeError) as e:  # a class that moved (featx 0.2's featx.scaling)
            made = (manifest.get("versions") or {}).get("featx", "another version")
            raise FeatxError(
                f"{p} was written by featx {made} and names code this featx {__version__} does not have ({e}): "
                "refit it with featx fit"
            ) from None
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - optional extra
        raise FeatxError(f"{p} is a skops file: pip install 'featx[skops]' to load it") from None
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=blob) if t not in SKOPS_TRUSTED]
        if untrusted:
            raise FeatxError(f"{p} holds types skops does not trust: {', '.join(untrusted)}")
        return sio.loads(blob, trusted=list(SKOPS_TRUSTED))
    except FeatxError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged archive: one line
        raise FeatxError(f"{p} is not a readable skops file ({type(e).__name__}: {e})") from None


def _n_classes(estimator) -> int | None:
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        return None
    try:
        return int(max(int(c) for c in classes)) + 1
    except (TypeError, ValueError):
        return len(classes)


def cross_check(p: Path, estimator, manifest: dict) -> dict:
    """The manifest with its label names and settings verified against the estimator's own copy."""
    names = manifest.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FeatxError(f"{side_paths(p)[0]} has no list of label_names; re-export the classifier with featx fit")
    own_names = getattr(estimator, "featx_label_names_", None)
    if own_names is not None and list(own_names) != names:
        raise FeatxError(
            f"{side_paths(p)[0]} was edited: its label_names {_short(names)} differ from the classifier's own "
            f"{_short(own_names)}; restore the manifest or re-export with featx fit"
        )
    needed = _n_classes(estimator)
    if needed is not None and len(names) < needed:
        raise FeatxError(
            f"{side_paths(p)[0]} lists {len(names)} label names but the classifier predicts {needed} classes; "
            "restore the manifest or re-export with featx fit"
        )
    stamped = hasattr(estimator, "featx_feature_settings_")
    own = json.loads(json.dumps(getattr(estimator, "featx_feature_settings_", None) or {}, default=str))  # as in JSON
    recorded = manifest.get("backbone") or {}
    if not isinstance(recorded, dict):
        recorded = {"name": recorded}
    if stamped and recorded != own:
        diff = [k for k in sorted(set(own) | set(recorded)) if recorded.get(k) != own.get(k)]
        raise FeatxError(
            f"{side_paths(p)[0]} was edited: its backbone settings differ from the classifier's own "
            f"({', '.join(f'{k} {recorded.get(k)!r} != {own.get(k)!r}' for k in diff)}); "
            "restore the manifest or re-export with featx fit"
        )
    own_dim = getattr(estimator, "featx_feature_dim_", None)
    if own_dim is not None and manifest.get("feature_dim") is not None and int(manifest["feature_dim"]) != own_dim:
        raise FeatxError(
            f"{side_paths(p)[0]} was edited: feature_dim {manifest['feature_dim']} != the classifier's own {own_dim}"
        )
    return manifest


def _short(names) -> str:
    names = list(names)
    return repr(names) if len(names) <= 6 else repr(names[:5])[:-1] + f", ... ({len(names)} names)]"


def load_verified(path: str | os.PathLike) -> tuple[object, dict]:
    """``(estimator, manifest)`` of an exported classifier after every check in the module docstring."""
    p = Path(path)
    if not p.is_file():
        raise FeatxError(f"classifier {p} does not exist (write one with featx fit FEATURES.h5 -o {p.name})")
    pending = side_paths(p)[0].with_name(side_paths(p)[0].name + ".partial")
    if pending.is_file():  # an export killed before its manifest was renamed into place
        try:
            unfinished = json.loads(pending.read_text()).get("sha256") == hashlib.sha256(p.read_bytes()).hexdigest()
        except (OSError, ValueError, AttributeError):
            unfinished = False
        if unfinished:
            raise FeatxError(f"{p} is an unfinished export (stopped before its manifest was written): "
                             "rerun the featx fit that writes it")
    manifest = read_manifest(p)
    blob = p.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest["sha256"]:
        raise FeatxError(
            f"{p} was modified after export: sha256 {digest[:16]}... does not match the manifest's "
            f"{manifest['sha256'][:16]}...; refusing to load it (unpickling runs code): re-export it with featx fit"
        )
    estimator = _deserialize(p, blob, manifest)
    return estimator, cross_check(p, estimator, manifest)


# ------------------------------------------------------------------------------ feature settings
def _norm(key: str, value):
    if value is None:
        return None
    if key == "image_size":
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    return str(value)


def settings_mismatch(expected: dict | None, actual: dict | None) -> list[tuple[str, object, object]]:
    """``(key, expected, actual)`` for the :data:`CHECKED_SETTINGS` recorded on both sides that differ."""
    if not expected or not actual:
        return []
    out = []
    for key in CHECKED_SETTINGS:
        a, b = _norm(key, expected.get(key)), _norm(key, actual.get(key))
        if a is not None and b is not None and a != b:
            out.append((key, a, b))
    return out


#: how to re-extract with a classifier's settings, per setting
_FLAGS = {"name": "--backbone", "weights": "--weights", "image_size": "--image-size"}


def check_feature_settings(expected: dict | None, actual: dict | None, *, what: str, against: str) -> None:
    """Refuse features made with other backbone settings than ``expected`` (one line, with the fix).

    ``what`` names the data checked (``"feats/test.h5"``), ``against`` the reference
    (``"the classifier"``, ``"feats/train.h5"``). Settings recorded on one side only are not compared.
    """
    diff = settings_mismatch(expected, actual)
    if not diff:
        return
    said = "; ".join(f"{key} {b} where {against} has {a}" for key, a, b in diff)
    flags = " ".join(f"{_FLAGS[k]} {expected[k]}" for k in ("name", "weights", "image_size") if expected.get(k) is not None)
    raise FeatxError(
        f"{what} was extracted with other backbone settings ({said}): scores would be meaningless; "
        f"extract it again with featx extract {flags}".rstrip()
    )

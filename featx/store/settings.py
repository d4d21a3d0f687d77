"""The backbone settings a features file records, read the same way from old and new files.

Since featx 0.2 a features file records its backbone settings once, as ``config["backbone"]``
(the ``config`` attr: the validated parameters of the run). Files written by featx 0.1 carried
three copies (``config["backbone"]``, a ``backbone_settings`` attr and separate ``backbone`` /
``weights`` / ``image_size`` / ``preprocessing`` attrs); :func:`feature_settings` reads any of them.
"""

from __future__ import annotations

import json

#: Keys every recorded settings dict has (``None`` where an old file did not record one).
SETTINGS_KEYS = ("name", "weights", "image_size", "preprocessing", "resize")


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
        return v.item()
    return v


def _json_dict(v) -> dict | None:
    v = _text(v)
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        try:
            out = json.loads(v)
        except ValueError:
            return None
        return out if isinstance(out, dict) else None
    return None


def feature_settings(attrs) -> dict:
    """The backbone settings of a features file, from its attrs (a dict or ``h5py`` attrs).

    Returns a dict with at least ``name``, ``weights``, ``image_size``, ``preprocessing`` and
    ``resize`` (plus ``dim``, ``seed``, ``weights_sha256``/``model_sha256`` where recorded), or
    ``{}`` when the file records no backbone (features made outside featx extract).
    """
    attrs = dict(attrs.items()) if hasattr(attrs, "items") else {}
    found: dict | None = None
    config = _json_dict(attrs.get("config"))
    if config and isinstance(config.get("backbone"), dict) and config["backbone"].get("name"):
        found = dict(config["backbone"])
    if found is None:  # featx 0.1: a JSON copy in its own attr
        found = _json_dict(attrs.get("backbone_settings"))
        found = dict(found) if found and found.get("name") else None
    if found is None and isinstance(_text(attrs.get("backbone")), str):  # featx 0.1: separate attrs only
        found = {"name": _text(attrs["backbone"])}
        for key in ("weights", "image_size", "preprocessing"):
            if key in attrs:
                found[key] = _text(attrs[key])
    if found is None:
        return {}
    for key in SETTINGS_KEYS:
        found.setdefault(key, None)
    if isinstance(found.get("image_size"), float):
        found["image_size"] = int(found["image_size"])
    return found

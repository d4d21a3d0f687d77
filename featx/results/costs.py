"""End-to-end costs of a transfer-learning classifier: extraction + fit, backbone + classifier.

``featx extract`` records ``extract_timing`` on every features file (a JSON attr:
``{"seconds", "images", "images_per_second", "device", "backbone_params"}``; seconds = wall time
from pixels to stored features). ``featx fit`` copies the timing of its training (and test)
features into the manifest and the metrics JSON (key ``extract``); ``featx evaluate`` adds the
timing of the features it scores; ``featx report`` turns them into cells:

* time: ``extract + fit`` with the split shown (``4.1 min: extract 3.9 min + fit 9.0 s``);
* parameters: backbone + classifier;
* throughput: images/s from pixels (extraction and classifier in sequence), with the
  classifier-only figure beside it.

A cell that cannot be known says why (features made by another tool, or by featx before 0.2).
"""

from __future__ import annotations

import json

ATTR_TIMING = "extract_timing"
TIMING_KEYS = ("seconds", "images", "images_per_second", "device", "backbone_params")
NO_TIMING = "features file has no extract_timing (made outside featx extract, or before featx 0.2)"


def read_timing(attrs) -> dict | None:
    """The ``extract_timing`` of a features file's attrs, or ``None`` when absent or unreadable."""
    raw = (attrs or {}).get(ATTR_TIMING)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, dict) or not isinstance(raw.get("seconds"), int | float):
        return None
    return {k: raw.get(k) for k in TIMING_KEYS}


def fit_costs(train: dict | None, test: dict | None = None) -> dict:
    """The ``extract`` block a fit records: extraction seconds of the features it needed.

    ``train`` / ``test``: :func:`read_timing` of the training / test features file (``test`` is
    ``None`` when the held-out rows came from the training file).
    """
    files = {"train": train, "test": test}
    known = {k: v for k, v in files.items() if v is not None}
    out: dict = {"files": known}
    if train is None:
        out["missing"] = NO_TIMING
        return out
    out["seconds"] = float(sum(v["seconds"] for v in known.values()))
    out["images"] = int(sum(int(v.get("images") or 0) for v in known.values()))
    out["backbone_params"] = train.get("backbone_params")
    out["device"] = train.get("device")
    rate = (test or train).get("images_per_second")
    out["images_per_second"] = float(rate) if rate else None
    return out


def evaluation_costs(fit_extract: dict | None, data_timing: dict | None) -> dict:
    """The ``extract`` block of an evaluation: the fit's extraction costs (from the manifest), with
    the extraction rate of the evaluated features when that file recorded one."""
    out = dict(fit_extract or {"missing": "classifier manifest records no extraction costs (fit before featx 0.2)"})
    if data_timing is not None:
        out["images_per_second"] = data_timing.get("images_per_second")
        if out.get("backbone_params") is None:
            out["backbone_params"] = data_timing.get("backbone_params")
    return out


def pipeline_rate(extract_ips: float | None, classifier_ips: float | None) -> float | None:
    """Images/s from pixels when extraction and classification run one after the other."""
    if not extract_ips or not classifier_ips:
        return None
    return 1.0 / (1.0 / extract_ips + 1.0 / classifier_ips)


def transfer_cells(rec: dict, seconds_text, params_text) -> dict[str, str]:
    """Report cells ``train_time``, ``params``, ``throughput`` of a transfer row, end to end."""
    ext = rec.get("extract")
    fit_s = rec.get("train_seconds")
    clf_params = (rec.get("model") or {}).get("params")
    clf_ips = (rec.get("single_crop") or {}).get("images_per_second")
    if not isinstance(ext, dict):
        why = "n/a: no extraction costs recorded (metrics from featx before 0.2)"
        ext = {"missing": why[len("n/a: "):]}
    why = ext.get("missing") or "not recorded"
    out = {}
    if ext.get("seconds") is not None and fit_s is not None:
        total = ext["seconds"] + fit_s
        out["train_time"] = f"{seconds_text(total)}: extract {seconds_text(ext['seconds'])} + fit {seconds_text(fit_s)}"
    else:
        fit = f"fit {seconds_text(fit_s)}" if fit_s is not None else "fit not recorded"
        out["train_time"] = f"n/a end to end: {why}; {fit}"
    bb = ext.get("backbone_params")
    if bb is not None and clf_params is not None:
        out["params"] = f"{params_text(bb + clf_params)} (backbone {params_text(bb)} + classifier {params_text(clf_params)})"
    else:
        clf = f"classifier {params_text(clf_params)}" if clf_params is not None else "classifier not recorded"
        out["params"] = f"n/a with backbone: {why}; {clf}"
    rate = pipeline_rate(ext.get("images_per_second"), clf_ips)
    clf = f"classifier only {clf_ips:,.1f} img/s" if clf_ips is not None else "classifier only: not recorded"
    if rate is not None:
        out["throughput"] = f"{rate:,.1f} img/s from pixels ({clf})"
    else:
        out["throughput"] = f"n/a from pixels: {why} ({clf})"
    return out

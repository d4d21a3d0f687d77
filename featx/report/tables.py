"""One record -> one row of display cells; a cell that does not apply says why ("n/a: ...")."""

from __future__ import annotations

COLUMNS = [
    ("method", "Method"),
    ("path", "Path"),
    ("rank1", "Rank-1"),
    ("rank5", "Rank-5"),
    ("rank1_10crop", "Rank-1 (10-crop)"),
    ("rank5_10crop", "Rank-5 (10-crop)"),
    ("train_time", "Train/fit time"),
    ("params", "Parameters"),
    ("trainable", "Trainable"),
    ("size", "Model size"),
    ("throughput", "Eval throughput"),
]


#: metrics ``kind`` -> the transfer path it is, as the report names it
PATHS = {"transfer": "linear probe", "finetune": "fine-tuned", "scratch": "from scratch"}


def headline_score(rec: dict) -> float | None:
    ten = rec.get("ten_crop") or {}
    single = rec.get("single_crop") or {}
    vals = [v for v in (single.get("rank1"), ten.get("rank1")) if v is not None]
    return max(vals) if vals else None


def _pct(v) -> str:
    return f"{100 * v:.2f}%"


def _seconds(s) -> str:
    if s is None:
        return None
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _bytes(n) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def cells(rec: dict) -> dict[str, str]:
    """The table cells of one record; what does not apply says why."""
    single = rec.get("single_crop") or {}
    ten = rec.get("ten_crop")
    n_classes = len((rec.get("data") or {}).get("label_names") or [])
    transfer = rec.get("kind") == "transfer"
    model = rec.get("model") or {}
    few = f"n/a: {n_classes} classes" if n_classes and n_classes <= 5 else "n/a"
    no_ten = "n/a: features (no crops)" if transfer else "n/a: not run (--ten-crop)"

    def rank(block, key):
        if block is None:
            return no_ten
        v = block.get(key)
        return _pct(v) if v is not None else few

    out = {
        "method": rec.get("method") or model.get("name") or "?",
        "path": PATHS.get(rec.get("kind"), "n/a: unknown kind"),
        "rank1": rank(single, "rank1"),
        "rank5": rank(single, "rank5"),
        "rank1_10crop": rank(ten, "rank1"),
        "rank5_10crop": rank(ten, "rank5"),
        "train_time": _seconds(rec.get("train_seconds")) or "n/a: not recorded",
        "params": f"{model['params']:,}" if model.get("params") is not None else "n/a: not recorded",
        "trainable": (f"{model['trainable_params']:,}" if model.get("trainable_params") is not None
                      else "n/a: not recorded"),
        "size": _bytes(model["size_bytes"]) if model.get("size_bytes") is not None else "n/a: not recorded",
        "throughput": (
            f"{single['images_per_second']:.1f} img/s"
            if single.get("images_per_second") is not None
            else "n/a: not recorded"
        ),
    }
    if transfer:  # end to end: extraction + fit, backbone + classifier, from pixels (featx.results.costs)
        from featx.results.costs import transfer_cells

        out.update(transfer_cells(rec, _seconds, lambda n: f"{int(n):,}"))
    elif rec.get("kind") == "finetune":
        out.update(_finetune_cells(rec))
    return out


def _finetune_cells(rec: dict) -> dict[str, str]:
    """Time of a fine-tuned network: its probe (extract + fit, for LP-FT) + the head phase + fine-tuning."""
    ft = rec.get("finetune") or {}
    train_s = rec.get("train_seconds")
    if train_s is None:
        return {}
    probe = (ft.get("probe") or {}).get("seconds")
    parts = []
    if probe is not None:
        parts.append(f"probe {_seconds(probe)}")
    if ft.get("head_seconds"):
        parts.append(f"head {_seconds(ft['head_seconds'])}")
    if ft.get("finetune_seconds"):
        parts.append(f"fine-tune {_seconds(ft['finetune_seconds'])}")
    total = train_s + (probe or 0.0)
    return {"train_time": f"{_seconds(total)}: " + " + ".join(parts) if parts else _seconds(total)}

"""The report's PNG plots (matplotlib, headless): accuracy per method, training curves, confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path

from featx.report.gather import Row


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(rows: list[Row], path: Path) -> Path:
    plt = _plt()
    names = [r.method for r in rows]
    single = [((r.record.get("single_crop") or {}).get("rank1") or 0) * 100 for r in rows]
    ten = [((r.record.get("ten_crop") or {}).get("rank1") or 0) * 100 for r in rows]
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], single, width=0.4, label="rank-1 single crop")
    ax.bar([x + 0.2 for x in xs], ten, width=0.4, label="rank-1 ten-crop")
    for x, v in zip(xs, single):
        ax.text(x - 0.2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    for x, v, r in zip(xs, ten, rows):
        ax.text(x + 0.2, v + 1, f"{v:.1f}" if r.record.get("ten_crop") else "n/a", ha="center", fontsize=8)
    ax.set_xticks(list(xs), names, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 125)
    ax.set_title("Accuracy per method")
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _load_history(rec: dict, source: Path) -> dict | None:
    h = rec.get("history")
    if not h:
        return None
    hp = Path(h)
    if not hp.is_absolute() and not hp.exists():
        hp = source.parent / hp
    try:
        data = json.loads(hp.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        data = data["history"]
    if isinstance(data, list):  # a list of per-epoch dicts
        keys = {k for d in data for k in d}
        data = {k: [d.get(k) for d in data] for k in keys}
    return data if isinstance(data, dict) else None


def plot_curves(rows: list[Row], path: Path) -> Path | None:
    hist = [(r.method, _load_history(r.record, r.source)) for r in rows if r.record.get("kind") in ("scratch", "finetune")]
    hist = [(m, h) for m, h in hist if h and h.get("loss")]
    if not hist:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for m, h in hist:
        ep = range(1, len(h["loss"]) + 1)
        a1.plot(ep, h["loss"], label=f"{m} train")
        if h.get("val_loss"):
            a1.plot(ep, h["val_loss"], "--", label=f"{m} val")
        acc = h.get("accuracy") or h.get("acc")
        if acc:
            a2.plot(ep, acc, label=f"{m} train")
        vacc = h.get("val_accuracy") or h.get("val_acc")
        if vacc:
            a2.plot(ep, vacc, "--", label=f"{m} val")
    a1.set_title("Loss")
    a2.set_title("Accuracy")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(row: Row, path: Path) -> Path | None:
    cm = row.record.get("confusion_matrix")
    names = (row.record.get("data") or {}).get("label_names") or []
    if not cm:
        return None
    plt = _plt()
    n = len(cm)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * n + 2), max(3.5, 0.45 * n + 1.5)))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), names[:n], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), names[:n], fontsize=7)
    if n <= 20:
        peak = max(max(r) for r in cm) or 1
        for i in range(n):
            for j in range(n):
                ax.text(j, i, cm[i][j], ha="center", va="center", fontsize=6,
                        color="white" if cm[i][j] > peak / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix: {row.method}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

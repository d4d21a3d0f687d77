"""``featx report``: every method side by side, as Markdown, self-contained HTML and JSON, with plots.

Inputs are metrics JSONs written by ``featx fit`` (``*.metrics.json``) and ``featx evaluate``
(``eval.json`` / ``*.eval.json``), or folders that hold them (searched recursively). When a
classifier has both (fit's held-out split and evaluate on a test file), the evaluation wins.
A cell that does not apply says why ("n/a: ...") and is never shown as 0.
"""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from featx import __version__
from featx.errors import FeatxError
from featx.metrics import SCHEMA, read_metrics
from featx.utils import atomic_write_bytes, atomic_write_json, atomic_write_text

COLUMNS = [
    ("method", "Method"),
    ("rank1", "Rank-1"),
    ("rank5", "Rank-5"),
    ("rank1_10crop", "Rank-1 (10-crop)"),
    ("rank5_10crop", "Rank-5 (10-crop)"),
    ("train_time", "Train/fit time"),
    ("params", "Parameters"),
    ("size", "Model size"),
    ("throughput", "Eval throughput"),
]


@dataclass
class Row:
    record: dict
    source: Path

    @property
    def method(self) -> str:
        return self.record.get("method") or self.record.get("model", {}).get("name") or self.source.stem


# ------------------------------------------------------------------ gathering


def _is_metrics(path: Path) -> bool:
    name = path.name
    return name.endswith(".metrics.json") or name == "eval.json" or name.endswith(".eval.json")


def gather(inputs: list[str | os.PathLike]) -> list[Row]:
    """Find and read metrics records; one row per method (an evaluation beats a fit's own split)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.json") if _is_metrics(q)))
        elif p.is_file():
            files.append(p)
        else:
            raise FeatxError(f"{p} does not exist")
    if not files:
        raise FeatxError(
            "no metrics found in " + ", ".join(map(str, inputs))
            + " (expected *.metrics.json from featx fit or eval.json from featx evaluate)"
        )
    rows: dict[str, Row] = {}
    for f in files:
        rec = read_metrics(f)
        key = (rec.get("model") or {}).get("path") or rec.get("method") or str(f)
        prior = rows.get(key)
        is_eval = f.name.endswith("eval.json")
        if prior is None or is_eval:
            rows[key] = Row(rec, f)
    return sorted(rows.values(), key=lambda r: -(_score(r.record) or -1))


def _score(rec: dict) -> float | None:
    ten = rec.get("ten_crop") or {}
    single = rec.get("single_crop") or {}
    vals = [v for v in (single.get("rank1"), ten.get("rank1")) if v is not None]
    return max(vals) if vals else None


# ------------------------------------------------------------------ cells


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
        "rank1": rank(single, "rank1"),
        "rank5": rank(single, "rank5"),
        "rank1_10crop": rank(ten, "rank1"),
        "rank5_10crop": rank(ten, "rank5"),
        "train_time": _seconds(rec.get("train_seconds")) or "n/a: not recorded",
        "params": f"{model['params']:,}" if model.get("params") is not None else "n/a: not recorded",
        "size": _bytes(model["size_bytes"]) if model.get("size_bytes") is not None else "n/a: not recorded",
        "throughput": (
            f"{single['images_per_second']:.1f} img/s"
            if single.get("images_per_second") is not None
            else "n/a: not recorded"
        ),
    }
    if transfer:  # end to end: extraction + fit, backbone + classifier, from pixels (featx.costs)
        from featx.costs import transfer_cells

        out.update(transfer_cells(rec, _seconds, lambda n: f"{int(n):,}"))
    return out


# ------------------------------------------------------------------ plots


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
    hist = [(r.method, _load_history(r.record, r.source)) for r in rows if r.record.get("kind") == "scratch"]
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


# ------------------------------------------------------------------ documents


def _markdown(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None) -> str:
    lines = ["# featx report", ""]
    for w in warnings:
        lines.append(f"> **WARNING:** {w}")
    if warnings:
        lines.append("")
    if best:
        lines += [f"**Best method: {best}**", ""]
    lines.append("| " + " | ".join(t for _, t in COLUMNS) + " |")
    lines.append("|" + "|".join("---" for _ in COLUMNS) + "|")
    for row in table:
        lines.append("| " + " | ".join(row[k] for k, _ in COLUMNS) + " |")
    lines.append("")
    for title, p in plots.items():
        lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    lines.append(f"_featx {__version__}_")
    return "\n".join(lines) + "\n"


def _html(table: list[dict], warnings: list[str], plots: dict[str, Path], best: str | None) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>featx report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}.na{color:#888}.warn{background:#fff3cd;",
        "border:1px solid #e0b000;padding:8px;margin:8px 0}img{max-width:100%}</style></head><body>",
        "<h1>featx report</h1>",
    ]
    parts += [f"<div class='warn'><b>WARNING:</b> {esc(w)}</div>" for w in warnings]
    if best:
        parts.append(f"<p><b>Best method: {esc(best)}</b></p>")
    parts.append("<table><tr>" + "".join(f"<th>{esc(t)}</th>" for _, t in COLUMNS) + "</tr>")
    for row in table:
        tds = "".join(
            f"<td class='na'>{esc(row[k])}</td>" if row[k].startswith("n/a") else f"<td>{esc(row[k])}</td>"
            for k, _ in COLUMNS
        )
        parts.append(f"<tr>{tds}</tr>")
    parts.append("</table>")
    for title, p in plots.items():
        b64 = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<h2>{esc(title)}</h2><img alt='{esc(title)}' src='data:image/png;base64,{b64}'>")
    parts.append(f"<p><small>featx {__version__}</small></p></body></html>")
    return "\n".join(parts) + "\n"


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    json: Path
    table: list[dict]
    best: str | None
    warnings: list[str]


def make_report(inputs: list[str | os.PathLike], out_dir: str | os.PathLike) -> ReportResult:
    """Gather metrics from ``inputs`` and write report.md, report.html, report.json and PNG plots."""
    from featx.outputs import output_lock

    out = Path(out_dir)
    _check_output(out, inputs)
    with output_lock(out):
        return _make_report(inputs, out)


#: Files a report writes into its folder.
REPORT_FILES = ("report.md", "report.html", "report.json", "accuracy.png", "curves.png", "confusion.png")


def _check_output(out: Path, inputs) -> None:
    """No input among the report's files; replace them only in a featx report folder; writable."""
    from featx.outputs import check_not_input, check_overwritable, check_writable, is_featx_output

    for name in REPORT_FILES:
        check_not_input(out / name, *inputs)
    if not is_featx_output(out / "report.json"):  # not an earlier report: replace nothing foreign
        for name in REPORT_FILES:
            check_overwritable(out / name)
    check_writable(out, folder=True)


def _make_report(inputs, out: Path) -> ReportResult:
    rows = gather(inputs)
    out.mkdir(parents=True, exist_ok=True)
    table = [cells(r.record) for r in rows]
    warnings: list[str] = []
    for r in rows:
        for w in r.record.get("warnings") or []:
            msg = f"{r.method}: {w}"
            if msg not in warnings:
                warnings.append(msg)
    scored = [r for r in rows if _score(r.record) is not None]
    best = scored[0] if scored else None

    plots: dict[str, Path] = {}
    tmp = out / ".plots"
    tmp.mkdir(exist_ok=True)
    plots["Accuracy per method"] = plot_accuracy(rows, tmp / "accuracy.png")
    curves = plot_curves(rows, tmp / "curves.png")
    if curves:
        plots["Training curves (scratch runs)"] = curves
    if best is not None:
        cm = plot_confusion(best, tmp / "confusion.png")
        if cm:
            plots[f"Confusion matrix of the best method ({best.method})"] = cm
    final_plots = {}
    for title, p in plots.items():
        dest = out / p.name
        atomic_write_bytes(dest, p.read_bytes())
        p.unlink()
        final_plots[title] = dest
    tmp.rmdir()

    best_name = best.method if best else None
    md = atomic_write_text(out / "report.md", _markdown(table, warnings, final_plots, best_name))
    page = atomic_write_text(out / "report.html", _html(table, warnings, final_plots, best_name))
    js = atomic_write_json(
        out / "report.json",
        {
            "schema": "featx.report/1",
            "featx_version": __version__,
            "best": best_name,
            "warnings": warnings,
            "columns": [k for k, _ in COLUMNS],
            "table": table,
            "sources": [str(r.source) for r in rows],
            "records": [r.record for r in rows],
            "plots": {t: p.name for t, p in final_plots.items()},
            "metrics_schema": SCHEMA,
        },
    )
    return ReportResult(out, md, page, js, table, best_name, warnings)

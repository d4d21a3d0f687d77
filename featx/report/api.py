"""``featx report``: every method side by side, as Markdown, self-contained HTML and JSON, with plots.

Inputs are metrics JSONs written by ``featx fit`` (``*.metrics.json``) and ``featx evaluate``
(``eval.json`` / ``*.eval.json``), or folders that hold them (searched recursively); ``featx
inspect`` results (``inspect.json``) among them add a "Data health" section
(:mod:`featx.report.health`). When a
classifier has both (fit's held-out split and evaluate on a test file), the evaluation wins.
A cell that does not apply says why ("n/a: ...") and is never shown as 0.

:func:`make_report` reads top-down: gather (:mod:`featx.report.gather`) -> cells
(:mod:`featx.report.tables`) -> plots (:mod:`featx.report.plots`) -> Markdown and HTML
(:mod:`featx.report.render`) -> files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from featx import __version__
from featx.report.gather import gather
from featx.report.health import find_records, health_section
from featx.report.plots import plot_accuracy, plot_confusion, plot_curves
from featx.report.render import render_html, render_markdown
from featx.report.tables import COLUMNS, cells, headline_score
from featx.results.metrics import SCHEMA
from featx.utils import atomic_write_bytes, atomic_write_json, atomic_write_text


@dataclass
class ReportResult:
    out_dir: Path
    markdown: Path
    html: Path
    json: Path
    table: list[dict]
    best: str | None
    warnings: list[str]
    health: dict | None = None


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
    health = health_section(find_records(inputs), rows)
    out.mkdir(parents=True, exist_ok=True)
    table = [cells(r.record) for r in rows]
    warnings: list[str] = []
    for r in rows:
        for w in r.record.get("warnings") or []:
            msg = f"{r.method}: {w}"
            if msg not in warnings:
                warnings.append(msg)
    scored = [r for r in rows if headline_score(r.record) is not None]
    best = scored[0] if scored else None

    plots: dict[str, Path] = {}
    tmp = out / ".plots"
    tmp.mkdir(exist_ok=True)
    plots["Accuracy per method"] = plot_accuracy(rows, tmp / "accuracy.png")
    curves = plot_curves(rows, tmp / "curves.png")
    if curves:
        plots["Training curves (fine-tuned and scratch runs)"] = curves
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
    md = atomic_write_text(out / "report.md", render_markdown(table, warnings, final_plots, best_name, health))
    page = atomic_write_text(out / "report.html", render_html(table, warnings, final_plots, best_name, health))
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
            "health": health,
            "metrics_schema": SCHEMA,
        },
    )
    return ReportResult(out, md, page, js, table, best_name, warnings, health)

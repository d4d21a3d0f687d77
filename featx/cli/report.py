"""``featx report INPUTS... -o REPORT_DIR``."""

from __future__ import annotations

import click

from featx.cli.options import say, warn


@click.command("report")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default="report", help="Output folder.")
def command(inputs, out_dir):
    """Compare every method found in INPUTS side by side.

    INPUTS are metrics files written by `featx fit` (*.metrics.json) and `featx evaluate`
    (eval.json), or folders holding them (searched recursively). Results of `featx inspect`
    (inspect.json) among them add a Data health section: leakage per split, and rank-1 with the
    leaked rows removed beside the reported one. Writes report.md, a
    self-contained report.html (plots embedded), report.json and the PNG plots.
    """
    from featx.report import COLUMNS, make_report

    res = make_report(list(inputs), out_dir)
    for w in res.warnings:
        warn(w)
    widths = {k: max(len(t), *(len(r[k]) for r in res.table)) for k, t in COLUMNS}
    keys = ["method", "rank1", "rank5", "rank1_10crop", "rank5_10crop", "train_time"]
    say("  ".join(t.ljust(widths[k]) for k, t in COLUMNS if k in keys))
    for row in res.table:
        say("  ".join(row[k].ljust(widths[k]) for k, _ in COLUMNS if k in keys))
    if res.best:
        say(f"best: {res.best}")
    for a in (res.health or {}).get("accuracy", []):
        without = "n/a" if a["rank1_without_leaked"] is None else f"{a['rank1_without_leaked']:.4f}"
        say(f"data health: {a['method']} on {a['split']}: {a['leaked_rows']} of {a['rows']} rows have a "
            f"near-duplicate in training; rank-1 {a['reported_rank1']:.4f}, without them {without}")
    say(f"report: {res.html}  (also {res.markdown.name}, {res.json.name})")

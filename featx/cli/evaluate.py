"""``featx evaluate RUN_DIR_OR_CLF --data TEST.h5 [--ten-crop] [-o eval.json]``."""

from __future__ import annotations

import click

from featx.cli.options import progress_option, say, warn


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


@click.command("evaluate")
@click.argument("target", type=click.Path(exists=True))
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Images file (for a train run) or features file (for a classifier).")
@click.option("--ten-crop", is_flag=True, help="Also score 4 corners + center and their mirrors (images only).")
@click.option("-o", "--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Metrics JSON [default: RUN_DIR/eval.json, or NAME.eval.json next to the model/classifier].")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Rows per forward pass [default: 64 images, 4096 feature rows].")
@progress_option
def command(target, data_path, ten_crop, out_path, batch_size, progress):
    """Rank-1 / rank-5 accuracy, per-class report and confusion matrix of TARGET on --data.

    TARGET is a featx train run folder (or a .keras model or checkpoint in one), scored on an
    images file, or a featx fit classifier, scored on a features file. Every row is counted.
    """
    from featx.evaluate import evaluate

    result = evaluate(target, data_path, ten_crop=ten_crop, batch_size=batch_size, out=out_path, progress=progress)
    rec = result.record
    for w in rec.get("warnings", []):
        warn(w)
    sc = rec["single_crop"]
    unit = "images" if rec["kind"] == "scratch" else "rows"
    say(f"{rec['method']} on {rec['data']['path']} ({rec['data']['rows']} rows)")
    say(f"  single-crop  rank-1 {_pct(sc['rank1'])}  rank-5 {_pct(sc['rank5'])}  "
        f"({sc['images_per_second']} {unit}/s)")
    tc = rec.get("ten_crop")
    if tc:
        say(f"  ten-crop     rank-1 {_pct(tc['rank1'])}  rank-5 {_pct(tc['rank5'])}  "
            f"({tc['images_per_second']} images/s, {tc['seconds_over_single']}x single-crop time)")
    say("")
    say(result.report_text.rstrip())
    say("")
    say(f"metrics: {result.path}")

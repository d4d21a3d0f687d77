"""``featx demo [-o DIR]``."""

from __future__ import annotations

import click

from featx.backbones.registry import BACKBONES
from featx.cli.options import (
    LazyHelpOption,
    RegistryChoice,
    progress_option,
    say,
    scratch_models_registry,
    seed_option,
    warn,
)
from featx.demo import DEMO_MAX_INPUT, DemoConfig

D = DemoConfig()  # the library's defaults are the CLI's


def _models_help() -> str:
    others = [n for n in scratch_models_registry().list_names() if n not in D.models]
    return (f"Scratch model to train; repeat to train several (e.g. {' '.join(f'-m {n}' for n in others)}). "
            f"Each trains at its own input side, at most {DEMO_MAX_INPUT}.")


@click.command("demo")
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), default=D.out, help="Demo folder.")
@click.option("--models", "-m", cls=LazyHelpOption, multiple=True, type=RegistryChoice(scratch_models_registry),
              default=D.models, help_fn=_models_help)
@click.option("--epochs", type=click.IntRange(min=1), default=D.epochs, help="Training epochs per scratch model.")
@click.option("--batch-size", type=click.IntRange(min=1), default=D.batch_size, help="Training batch size.")
@click.option("--per-class", type=click.IntRange(min=10), default=D.per_class,
              help="Digits per class [default: all, about 180].")
@click.option("--backbone", type=RegistryChoice(lambda: BACKBONES), default=D.backbone,
              help="Feature backbone (see featx models).")
@click.option("--weights", default=D.weights,
              help="auto: ImageNet when cached or downloadable, else random init with a warning; "
                   "or imagenet, none, or a weights file.")
@click.option("--extract-size", type=click.IntRange(min=32), default=D.extract_size,
              help=f"Backbone input side ({D.backbone}'s own is {BACKBONES.get_info(D.backbone).default_size}; "
                   "smaller is faster on a CPU).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=D.lr, help="Initial learning rate (SGD).")
@click.option("--finetune", is_flag=True,
              help="Also fine-tune the backbone from the fitted classifier (LP-FT, featx finetune); adds minutes on a CPU.")
@click.option("--finetune-epochs", type=click.IntRange(min=1), default=D.finetune_epochs, help="Epochs with --finetune.")
@seed_option
@click.option("--overwrite", is_flag=True, help="Redo every step instead of keeping finished outputs.")
@progress_option
def command(out, models, epochs, batch_size, per_class, backbone, weights, extract_size, lr, finetune, finetune_epochs,
            seed, overwrite, progress):
    """Run both paths end to end on scikit-learn's digits, then write the comparison report.

    build -> extract (--backbone features) -> fit (logistic regression) -> train (the -m scratch
    models) -> evaluate (ten-crop) -> report. Every step is resumable: rerun to continue an interrupted demo.
    Takes a few minutes on a 2-core CPU with the defaults.
    """
    from featx.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out, models=tuple(dict.fromkeys(models)), epochs=epochs, batch_size=batch_size, per_class=per_class,
        backbone=backbone, weights=weights, extract_size=extract_size, lr=lr, finetune=finetune,
        finetune_epochs=finetune_epochs, seed=seed, overwrite=overwrite, progress=progress,
    )
    res = run_demo(cfg, say=say, warn=warn)
    say("")
    cols = ["method", "path", "rank1", "rank5", "rank1_10crop", "train_time"]
    heads = {"method": "Method", "path": "Path", "rank1": "Rank-1", "rank5": "Rank-5", "rank1_10crop": "Rank-1 10-crop",
             "train_time": "Train/fit time"}
    widths = {c: max(len(heads[c]), *(len(r[c]) for r in res.table)) for c in cols}
    say("  ".join(heads[c].ljust(widths[c]) for c in cols))
    for r in res.table:
        say("  ".join(r[c].ljust(widths[c]) for c in cols))
    for w in res.warnings:
        warn(w)
    say(f"\nbest: {res.best}   (demo took {res.seconds / 60:.1f} min)")
    say(f"report: {res.report_html}")

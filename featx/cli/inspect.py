"""``featx inspect FEATURES.h5 [MORE.h5 ...] -o OUT_DIR``: label issues, near-duplicates, leakage."""

from __future__ import annotations

import click

from featx.cli.options import overwrite_option, progress_option, say
from featx.fit import DEFAULT_CV
from featx.inspect import DEFAULT_DUP_THRESHOLD, DEFAULT_TOP, ENGINES, FAISS_INSTALL


@click.command("inspect")
@click.argument("features", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Folder for label_issues.csv, duplicates.csv, inspect.json and inspect.html.")
@click.option("--classifier", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="A classifier from featx fit: its C, scaler and folds for the out-of-fold model, and its "
                   "accuracy on each other split with the leaked rows removed [default: a quick C search].")
@click.option("--images", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Images stores (featx build) with the rows' pixels, for thumbnails; repeatable "
                   "[default: the store or folder each features file was extracted from, when readable].")
@click.option("--train", "train", multiple=True, metavar="SPLIT",
              help="Name of a training split; repeatable [default: splits named train*, else the first file].")
@click.option("--dup-threshold", type=click.FloatRange(-1, 1), default=DEFAULT_DUP_THRESHOLD,
              help="Cosine similarity (L2-normalized features) from which two rows are near-duplicates.")
@click.option("--engine", type=click.Choice(ENGINES), default="auto",
              help=f"Exact duplicate search: faiss ({FAISS_INSTALL}), numpy (blocked matrix products), auto (faiss when installed).")
@click.option("--cv", type=click.IntRange(min=2), default=None,
              help=f"Folds of the out-of-fold model [default: the classifier's, else {DEFAULT_CV}].")
@click.option("--top", type=click.IntRange(min=0), default=DEFAULT_TOP, help="Items of each kind shown with thumbnails in inspect.html.")
@click.option("--jobs", "-j", type=int, default=-1, help="Parallel fold fits (-1: all cores).")
@click.option("--seed", type=int, default=None, help="Seed of the folds [default: the classifier's, else 42].")
@progress_option
@overwrite_option
def command(features, out_dir, classifier, images, train, dup_threshold, engine, cv, top, jobs, seed, progress, overwrite):
    """Find label errors, near-duplicates and train/test leakage in FEATURES.

    Each FEATURES file is one split (train.h5, val.h5, test.h5 ...), named by what the file records
    or else by its file stem. Label issues: out-of-fold probabilities of featx fit's logistic
    regression on the training split(s), then confident learning (cleanlab, ranked by
    self-confidence). Near-duplicates: every pair of rows, within and across splits, whose cosine
    similarity reaches --dup-threshold (exact search in blocks). Leakage: the rows of each other
    split with a near-duplicate in training. Writes label_issues.csv, duplicates.csv, inspect.json
    and a self-contained inspect.html; `featx report` shows a Data health section from inspect.json.
    """
    from featx.inspect import inspect_features

    res = inspect_features(
        list(features), out_dir, classifier=classifier, images=list(images), train=list(train) or None,
        dup_threshold=dup_threshold, engine=engine, cv=cv, seed=seed, jobs=jobs, top=top, overwrite=overwrite,
        progress=progress,
    )
    print_result(res)


def print_result(res) -> None:
    for line in res.summary():
        say(line)
    say(f"inspect: {res.files['html']}  (also label_issues.csv, duplicates.csv, inspect.json in {res.out_dir})")

"""``featx fit FEATURES.h5 -o clf.pkl`` (pure scikit-learn: TensorFlow is never imported)."""

from __future__ import annotations

import click

from featx.cli.options import overwrite_option, say, seed_option, warn


def _jobs(jobs) -> str:
    return "all cores" if jobs is None or jobs < 0 else f"{jobs} parallel"


def _grid(ctx, param, value):
    if value is None:
        return None
    try:
        grid = [float(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.001,0.01,0.1. Received: {value!r}") from None
    if not grid or any(c <= 0 for c in grid):
        raise click.BadParameter(f"C values must be positive. Received: {value!r}")
    return grid


def _test_size(ctx, param, value):
    if value <= 0 or (value >= 1 and value != int(value)):
        raise click.BadParameter(f"must be a fraction in (0, 1) or a whole count. Received: {value}")
    return value


@click.command("fit")
@click.argument("features", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="Classifier file to write (e.g. clf.pkl).")
@click.option("--test", "test", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Held-out features (e.g. feats/test.h5) [default: a stratified --test-size split].")
@click.option("--test-size", type=float, default=0.25, callback=_test_size, help="Held-out split when no --test: fraction or count.")
@click.option("--grid", "grid", default=None, callback=_grid, metavar="C1,C2,...",
              help="Values of C to search [default: the decades 1e-4 ... 1e2, then the half decades around the best].")
@click.option("--refine/--no-refine", default=None,
              help="Second pass over the half decades around the best C [default: on with the default grid].")
@click.option("--scaler", type=click.Choice(["auto", "standard", "global"]), default="auto",
              help="Feature scaling: standard (unit variance per feature), global (one scale for all), auto (CV picks).")
@click.option("--cv", type=click.IntRange(min=2), default=3, help="Cross-validation folds.")
@click.option("--jobs", "-j", type=int, default=-1, help="Parallel fits (joblib n_jobs; -1: all cores).")
@click.option("--format", "fmt", type=click.Choice(["pickle", "skops"]), default="pickle",
              help="pickle (what users asked for; loading runs code, so featx checks its sha256) or skops (loads without running code).")
@click.option("--max-iter", type=click.IntRange(min=10), default=1000, help="lbfgs iteration cap.")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=1e-3, help="lbfgs stopping tolerance.")
@seed_option
@overwrite_option
def command(features, out, test, test_size, grid, refine, scaler, cv, jobs, fmt, max_iter, tol, seed, overwrite):
    """Tune a logistic regression on FEATURES (written by featx extract) and export it.

    A scaler + LogisticRegression (lbfgs) in a Pipeline; GridSearchCV over C (and the scaler) with
    --cv folds run in parallel. Prints the best C, a classification report, rank-1 / rank-5 accuracy and the
    fit time. Writes the classifier, CLF.manifest.json (sha256, label names, backbone, versions,
    scores) and CLF.metrics.json (read by featx report).
    """
    from featx.classify import fit_features

    result, paths = fit_features(
        features, out, test=test, format=fmt, overwrite=overwrite,
        test_size=test_size, seed=seed, grid=grid, cv=cv, jobs=jobs, tol=tol, max_iter=max_iter,
        scalers=("standard", "global") if scaler == "auto" else (scaler,), refine=refine,
    )
    s = result.scores
    say(f"best params: C={result.best_params['C']:g}, scaler={result.best_params['scaler']} "
        f"(mean {result.config['cv']}-fold CV accuracy {result.cv_score:.4f})")
    say(f"held-out set: {result.n_test} rows ({result.config['test']}); trained on {result.n_train} rows x {result.feature_dim} features")
    say(s["classification_report_text"].rstrip())
    rank5 = "n/a (5 classes or fewer)" if s["rank5"] is None else f"{s['rank5']:.4f}"
    say(f"rank-1 accuracy: {s['rank1']:.4f}")
    say(f"rank-5 accuracy: {rank5}")
    n_fits = len(result.cv_results) * result.config["cv"] + 1
    say(f"fit time: {result.fit_seconds:.2f}s ({len(result.cv_results)} settings x {result.config['cv']} folds "
        f"+ refit = {n_fits} fits, {_jobs(result.config['jobs'])})")
    for w in result.warnings:
        warn(w)
    say(f"classifier: {paths['classifier']}")
    say(f"manifest:   {paths['manifest']}")
    say(f"metrics:    {paths['metrics']}")

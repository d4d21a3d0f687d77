"""``featx fit FEATURES.h5 -o clf.pkl`` (in memory: pure scikit-learn, TensorFlow is never imported;
out of core, ``--solver sgd``: Keras on its configured backend)."""

from __future__ import annotations

import click

from featx.cli.options import overwrite_option, say, seed_option, warn
from featx.constants import DEFAULT_CONNECT_TIMEOUT
from featx.fit import (
    BACKENDS,
    DEFAULT_BACKEND,
    DEFAULT_BATCH_SIZE,
    DEFAULT_CV,
    DEFAULT_EPOCHS,
    DEFAULT_FORMAT,
    DEFAULT_GRID,
    DEFAULT_LEARNING_RATE,
    DEFAULT_MAX_ITER,
    DEFAULT_SCALER,
    DEFAULT_SLAB_ROWS,
    DEFAULT_SOLVER,
    DEFAULT_TEST_SIZE,
    DEFAULT_TOL,
    FORMATS,
    RAY_INSTALL,
    SCALER_CHOICES,
    SCALERS,
    SOLVERS,
)


def _grid_text() -> str:
    return f"decades and half decades {min(DEFAULT_GRID):g} ... {max(DEFAULT_GRID):g} ({len(DEFAULT_GRID)} values)"


def _jobs(jobs) -> str:
    return "all cores" if jobs is None or jobs < 0 else f"{jobs} parallel"


def _grid(ctx, param, value):
    import math

    if value is None:
        return None
    cells = value.replace(" ", "").split(",")
    if cells and not cells[-1]:
        cells.pop()  # a trailing comma: 0.1,1,
    try:
        grid = [float(v) for v in cells]  # an empty cell (1,,2) is an error, never skipped
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers such as 0.001,0.01,0.1. Received: {value!r}") from None
    if not grid or any(not math.isfinite(c) or c <= 0 for c in grid):
        raise click.BadParameter(f"C values must be finite and positive (inf is no regularization). Received: {value!r}")
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
@click.option("--test-size", type=float, default=DEFAULT_TEST_SIZE, callback=_test_size,
              help="Held-out split when no --test: fraction or count.")
@click.option("--grid", "grid", default=None, callback=_grid, metavar="C1,C2,...",
              help=f"Values of C to search [default: {_grid_text()}].")
@click.option("--scaler", type=click.Choice(SCALER_CHOICES), default=DEFAULT_SCALER,
              help="Feature scaling: standard (unit variance per feature), global (one scale for all), auto (CV picks).")
@click.option("--cv", type=click.IntRange(min=2), default=DEFAULT_CV, help="Cross-validation folds (--solver lbfgs only).")
@click.option("--solver", type=click.Choice(SOLVERS), default=DEFAULT_SOLVER,
              help="lbfgs: features in memory, CV along a warm-started C path; sgd: out of core, every C x scaler "
                   "a softmax head trained together by Adam (Keras) on minibatches of slabs read from the file, C "
                   "chosen on held-out rows; auto: lbfgs unless the features would not fit in memory "
                   "(FEATX_FIT_MEMORY=2G sets the memory assumed).")
@click.option("--backend", type=click.Choice(BACKENDS), default=DEFAULT_BACKEND,
              help=f"Where the CV folds run (joblib backend); ray needs {RAY_INSTALL}.")
@click.option("--address", default=None, metavar="HOST:PORT",
              help="Ray cluster to join with --backend ray [default: start a local Ray].")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_CONNECT_TIMEOUT,
              help="Seconds to wait for the --address to answer before giving up.")
@click.option("--jobs", "-j", type=int, default=-1, help="Parallel fits (joblib n_jobs; -1: all cores).")
@click.option("--slab-rows", type=click.IntRange(min=16), default=DEFAULT_SLAB_ROWS,
              help="Rows per slab read from the file, the memory bound (--solver sgd only).")
@click.option("--epochs", type=click.IntRange(min=1), default=DEFAULT_EPOCHS, help="Passes over the file (--solver sgd only).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_LEARNING_RATE,
              help="Adam's peak learning rate, cosine-decayed to 0 (--solver sgd only).")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, help="Rows per minibatch (--solver sgd only).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=DEFAULT_FORMAT,
              help="pickle (loading runs code, so featx checks its sha256) or skops (loads without running code).")
@click.option("--max-iter", type=click.IntRange(min=10), default=DEFAULT_MAX_ITER, help="Iteration cap per fit (--solver lbfgs only).")
@click.option("--tol", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TOL, help="Stopping tolerance of the refit (--solver lbfgs only; it bounds the gradient in L-BFGS's preconditioned variables).")
@click.option("--inspect", "inspect_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Also write featx inspect's results to DIR (label issues from out-of-fold probabilities on "
                   "this fit's folds at its C, near-duplicates, leakage of --test, accuracy without leaked rows).")
@seed_option
@overwrite_option
def command(features, out, test, test_size, grid, scaler, cv, solver, backend, address, connect_timeout, jobs, slab_rows, epochs,
            learning_rate, batch_size, fmt, max_iter, tol, seed, overwrite, inspect_dir):
    """Tune a logistic regression on FEATURES and export it.

    FEATURES: a features file written by featx extract, or a book-style HDF5 file (datasets
    features, labels and optional label_names). A scaler + LogisticRegression (lbfgs) in a
    Pipeline; C (and the scaler) chosen by --cv-fold cross-validation, each fold walking the C grid
    with warm starts; folds in parallel. --solver sgd streams the file instead (out of core), and
    the default --solver auto does so by itself when the features would not fit in memory.
    Prints the best C, the CV score, a classification report, rank-1 / rank-5 accuracy and the
    time. Writes the classifier, CLF.manifest.json and CLF.metrics.json (read by featx report).
    """
    from featx.errors import FeatxError
    from featx.fit import fit_features

    if address is not None and backend != "ray":
        raise click.UsageError("--address needs --backend ray")
    why = None
    if solver == "auto":
        from featx.fit import choose_solver

        solver, why = choose_solver(features, test)
        if solver == "sgd":  # the exception: say why this fit streams (and takes its time)
            say(f"solver: {solver}, {why}")
    if solver == "sgd" and backend != DEFAULT_BACKEND:
        raise click.UsageError("--backend applies to --solver lbfgs (its CV folds); --solver sgd streams the file in one process")
    _refuse_other_solvers_options(solver)
    if inspect_dir is not None:  # before minutes of fitting: the folder must be usable
        from featx.inspect import check_output

        # an earlier `featx fit --inspect` of these features wrote DIR: a rerun may replace it
        check_output(inspect_dir, [features, test], overwrite=overwrite or _ours(inspect_dir, features) is not None)
    scalers = SCALERS if scaler == "auto" else (scaler,)
    try:
        result, paths = fit_features(
            features, out, test=test, format=fmt, overwrite=overwrite, solver=solver, solver_choice=why,
            test_size=test_size, seed=seed, grid=grid, cv=cv, jobs=jobs, tol=tol, max_iter=max_iter,
            scalers=scalers, backend=backend, address=address, slab_rows=slab_rows, epochs=epochs,
            **({"learning_rate": learning_rate, "batch_size": batch_size, "progress": True} if solver == "sgd" else {}),
            **({"connect_timeout": connect_timeout} if backend == "ray" else {}),
        )
    except FeatxError as e:  # library errors name parameters; say the flags
        raise FeatxError(_flags(str(e))) from None
    if result.reused:
        rank1 = result.scores.get("rank1")
        say(f"{paths['classifier']} is already complete (same features and parameters: best C "
            f"{result.best_params.get('C', float('nan')):g}, rank-1 accuracy {rank1 if rank1 is None else f'{rank1:.4f}'}); "
            "nothing to do (--overwrite refits)")
        say(f"manifest:   {paths['manifest']}")
        say(f"metrics:    {paths['metrics']}")
        if inspect_dir is not None:
            _inspect(features, test, paths["classifier"], inspect_dir, jobs=jobs, overwrite=overwrite, reused=True)
        return
    s = result.scores
    held = "held-out rows" if result.config.get("solver") == "sgd" else f"{result.config['cv']}-fold CV"
    say(f"best C: {result.best_params['C']:g} (scaler {result.best_params['scaler']}; "
        f"{held} accuracy {result.cv_score:.4f})")
    say(f"held-out set: {result.n_test} rows ({result.config['test']}); trained on {result.n_train} rows x {result.feature_dim} features")
    say(s["classification_report_text"].rstrip())
    rank5 = "n/a (5 classes or fewer)" if s["rank5"] is None else f"{s['rank5']:.4f}"
    say(f"rank-1 accuracy: {s['rank1']:.4f}")
    say(f"rank-5 accuracy: {rank5}")
    say(f"fit time: {result.fit_seconds:.2f}s ({_how(result)})")
    mem = result.config.get("memory")
    if mem:
        from featx.fit import size_text as mb

        say(f"memory: peak RSS {mb(mem['peak_rss_bytes'])} = {mb(mem['start_rss_bytes'])} before reading (interpreter, "
            f"libraries, Keras backend) + {mb(mem.get('runtime_bytes', 0))} the backend's first step (its compiled graph and tensors) + "
            f"{mb(mem.get('data_bytes', 0))} data (slab buffer {mb(mem['slab_buffer_bytes'])}, validation rows "
            f"{mb(mem['validation_bytes'])}, heads {mb(mem['heads_bytes'])}, a minibatch and temporaries)")
    for w in result.warnings:
        warn(w)
    say(f"classifier: {paths['classifier']}")
    say(f"manifest:   {paths['manifest']}")
    say(f"metrics:    {paths['metrics']}")
    if inspect_dir is not None:
        _inspect(features, test, paths["classifier"], inspect_dir, jobs=jobs, overwrite=overwrite)


def _ours(out_dir, features) -> dict | None:
    """The ``inspect.json`` in ``out_dir`` when ``featx fit --inspect`` wrote it for ``features`` (else None)."""
    from pathlib import Path

    from featx.errors import FeatxError
    from featx.inspect import INSPECT_FILES
    from featx.results.health import read_inspect

    out = Path(out_dir)
    try:
        record = read_inspect(out / "inspect.json")
    except FeatxError:
        return None
    config = record.get("config") or {}
    if not config.get("classifier") or (config.get("features") or [None])[0] != str(Path(features).resolve()):
        return None
    return record if all((out / name).is_file() for name in INSPECT_FILES) else None


def _inspect(features, test, classifier, out_dir, *, jobs, overwrite, reused=False) -> None:
    """``--inspect DIR``: featx inspect on the fit's files, at the fitted C and scaler, over its folds.

    A rerun of a finished ``featx fit --inspect`` (the classifier reused, DIR written for it and
    newer than it) has nothing to do; otherwise DIR is (re)written.
    """
    from pathlib import Path

    from featx.cli.inspect import print_result
    from featx.inspect import inspect_features

    record = _ours(out_dir, features)
    if record is not None:
        clf = Path(classifier).resolve()
        if (reused and not overwrite and record["config"]["classifier"] == str(clf)
                and Path(out_dir, "inspect.json").stat().st_mtime_ns >= clf.stat().st_mtime_ns):
            say(f"{out_dir} is already complete (featx inspect of {classifier}); nothing to do (--overwrite redoes it)")
            return
        overwrite = True  # featx fit --inspect's own earlier results for these features
    if test is None:
        warn("no --test file: the held-out rows are a split of the training file, so leakage into them shows as "
             "within-split near-duplicates in DIR/duplicates.csv")
    res = inspect_features([features] + ([test] if test else []), out_dir, classifier=classifier,
                           train=[features], jobs=jobs, overwrite=overwrite)
    print_result(res)


#: options that only one solver reads: giving one with the other solver is a usage error, never silently ignored
_SOLVER_ONLY = {"lbfgs": ("cv", "max_iter", "tol"), "sgd": ("slab_rows", "epochs", "learning_rate", "batch_size")}


def _refuse_other_solvers_options(solver: str) -> None:
    ctx = click.get_current_context()
    for other, names in _SOLVER_ONLY.items():
        if other == solver:
            continue
        given = [f"--{n.replace('_', '-')}" for n in names
                 if ctx.get_parameter_source(n) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"{', '.join(given)} apply to --solver {other} only (this run uses --solver {solver})")


_FLAGS = {"test_size=": "--test-size ", "grid=": "--grid ", "cv=": "--cv ", "scalers=": "--scaler ",
          "backend=": "--backend ", "address=": "--address ", "slab_rows=": "--slab-rows ", "epochs=": "--epochs ",
          "learning_rate=": "--learning-rate ", "batch_size=": "--batch-size "}


def _flags(msg: str) -> str:
    for k, v in _FLAGS.items():
        msg = msg.replace(k, v)
    return msg


def _how(result) -> str:
    c = result.config
    n_c = len(c["grid"])
    n_s = len(c["scalers"])
    if c.get("solver") == "sgd":
        return (f"sgd: {n_c} C values x {n_s} scaler(s) as softmax heads of one matrix product, Adam "
                f"(lr {c['learning_rate']:g}, cosine decay) for {c['epochs']} epoch(s), {c['steps']} minibatches of "
                f"<= {c['batch_size']} rows, {c['slabs_read']} block reads of <= {c['slab_rows']} rows a slab; "
                f"Keras backend {c['keras_backend']}")
    rows = sorted({r.get("rows") for r in result.cv_results if r.get("rows")})
    pre = (f" in L-BFGS variables preconditioned by the features' top {c['precond_rank']} principal directions"
           if c.get("precond_rank") else "")
    loose = (f" (paths at tol {c['path_tol']:g}, each stopped once past its CV peak; the winner refit at "
             f"--tol {c['tol']:g}{pre})" if c.get("path_tol") else "")
    checks = f"{c['cv']} folds" if not c.get("holdout_rows") else \
        f"one stratified hold-out of {c['holdout_rows']} rows instead of {c['cv']} folds"
    if len(rows) == 2:  # successive halving
        first = [r for r in result.cv_results if r.get("rows") == rows[0]]
        last = [r for r in result.cv_results if r.get("rows") == rows[1]]
        return (f"successive halving: {n_s} scaler(s), {len(first)} of {n_s * n_c} (scaler, C) pairs on {rows[0]} rows "
                f"({c['cv']} folds), then 1 scaler x {len(last)} C values on all {rows[1]} ({checks}); "
                f"warm-started C paths{loose}, + 1 refit; {_jobs(c['jobs'])}, backend {c['backend']}")
    return (f"{n_s} scaler(s) x {checks}, each one warm-started path over up to {n_c} C values{loose}, "
            f"+ 1 refit; {_jobs(c['jobs'])}, backend {c['backend']}")

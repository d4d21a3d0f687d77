"""Hostile and careless use, round 2 (issue 21): inconsistent files, odd file names, bad fit options,
predict's exit codes, reruns, refused runs that leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner

from featx.cli import cli
from tests._scratch_helpers import register_tiny
from tests._transfer_helpers import separable_features, write_features


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(r, *needles, code: int = 1) -> str:
    """The command failed with exit ``code`` and one line naming each needle; no traceback."""
    assert r.exit_code == code, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert "Traceback" not in r.output and "unexpected error" not in r.output, r.output
    for needle in needles:
        assert needle in lines[-1], r.output
    return lines[-1]


def _shorten_labels(path: Path, keep: int) -> Path:
    with h5py.File(path, "r+") as f:
        y = f["labels"][:keep]
        del f["labels"]
        f["labels"] = y
    return path


# ------------------------------------------------------------------------------ inconsistent files
@pytest.fixture(scope="module")
def short_labels(tmp_path_factory):
    """A features file and an images file whose 'labels' have fewer rows than their data."""
    from featx.data.synthetic import write_synthetic_store
    from featx.fit import fit_features

    tmp = tmp_path_factory.mktemp("short")
    X, y = separable_features(n_per_class=12, classes=3, dim=6)
    good = write_features(tmp / "good.h5", X, y, ["a", "b", "c"])
    _, paths = fit_features(good, tmp / "clf.pkl", jobs=1, cv=2)
    feats = write_features(tmp / "feats.h5", X, y, ["a", "b", "c"])
    images = tmp / "images.h5"
    write_synthetic_store(images, 30, 16, 3, seed=0, compute_mean=True)
    return {"features": _shorten_labels(feats, 30), "images": _shorten_labels(images, 25),
            "classifier": paths["classifier"], "tmp": tmp}


@pytest.mark.parametrize("command", ["fit", "fit-sgd", "evaluate", "extract", "train"])
def test_short_labels_give_the_same_one_line_error_in_every_command(short_labels, command):
    s, tmp = short_labels, short_labels["tmp"]
    args = {
        "fit": ["fit", s["features"], "-o", tmp / "c1.pkl"],
        "fit-sgd": ["fit", s["features"], "-o", tmp / "c2.pkl", "--solver", "sgd"],
        "evaluate": ["evaluate", s["classifier"], "--data", s["features"], "--no-progress"],
        "extract": ["extract", s["images"], "-o", tmp / "f.h5", "--no-progress"],
        "train": ["train", register_tiny(), "--train", s["images"], "-o", tmp / "run", "--epochs", "1"],
    }[command]
    rows = "'features' has 36 rows but 'labels' has 30" if "features" in map(str, args) or command.startswith(
        ("fit", "evaluate")) else "'images' has 30 rows but 'labels' has 25"
    one_line_error(run(*args), rows, "inconsistent")
    assert not (tmp / "run").exists()


# ------------------------------------------------------------------------------ refused runs leave nothing
def test_refused_train_leaves_no_run_folder(tmp_path):
    from featx.data.synthetic import write_synthetic_store

    train, other = tmp_path / "train.h5", tmp_path / "other.h5"
    write_synthetic_store(train, 12, 16, 3, seed=0, compute_mean=True)
    write_synthetic_store(other, 12, 16, 4, seed=1)
    tiny = register_tiny()
    for extra, needle in (
        (["--val", other], "differ from train labels"),  # a val file of another build
        (["--val", tmp_path / "missing.h5"], "does not exist"),
        (["--input-size", 32], "smaller than the 32px network input"),
    ):
        out = tmp_path / "runs" / "mini"
        one_line_error(run("train", tiny, "--train", train, "-o", out, "--epochs", 1, *extra), needle)
        assert not out.exists(), extra

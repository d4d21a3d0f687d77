"""Hostile and careless use, round 2 (issue 21): inconsistent files, odd file names, bad fit options,
predict's exit codes, reruns, refused runs that leave nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
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
    write_synthetic_store(tmp / "good_images.h5", 12, 16, 3, seed=1)
    return {"features": _shorten_labels(feats, 30), "images": _shorten_labels(images, 25),
            "classifier": paths["classifier"], "tmp": tmp}


@pytest.mark.parametrize("command", ["fit", "fit-sgd", "evaluate", "extract", "train"])
def test_short_labels_give_the_same_one_line_error_in_every_command(short_labels, command):
    s, tmp = short_labels, short_labels["tmp"]
    args = {  # lambdas: only the train case imports Keras (to register the tiny model)
        "fit": lambda: ["fit", s["features"], "-o", tmp / "c1.pkl"],
        "fit-sgd": lambda: ["fit", s["features"], "-o", tmp / "c2.pkl", "--solver", "sgd"],
        "evaluate": lambda: ["evaluate", s["classifier"], "--data", s["features"], "--no-progress"],
        "extract": lambda: ["extract", s["images"], "-o", tmp / "f.h5", "--no-progress"],
        "train": lambda: ["train", register_tiny(), "--train", s["images"], "-o", tmp / "run", "--epochs", "1"],
    }[command]()
    rows = ("'images' has 30 rows but 'labels' has 25" if command in ("extract", "train")
            else "'features' has 36 rows but 'labels' has 30")
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


# ------------------------------------------------------------------------------ odd file names
ODD = [b"cat/bad\xff.png", b"cat/caf\xe9 latin-1.png", b"cat/back\\slash\\xff.png", b"dog/new\nline.png"]


def _odd_source(root: Path) -> list[bytes]:
    """Two classes; four file names that are not valid UTF-8, hold backslashes or a newline."""
    from tests.conftest import color_image, save

    rng = np.random.default_rng(3)
    rels = [f"{c}/{c}{i}.png".encode() for c in ("cat", "dog") for i in range(5)] + ODD
    for rel in rels:
        save(color_image(rng, tint=rel.startswith(b"dog")), Path(os.fsdecode(os.path.join(os.fsencode(root), rel))))
    return sorted(rels)


def _stored(path: Path) -> list[bytes]:
    from featx.store import open_store

    with open_store(path) as r:
        return [os.fsencode(p) for p in r.paths]


@pytest.mark.slow
def test_odd_file_names_survive_build_extract_and_predict(tmp_path):
    """Names that are not valid UTF-8 are stored losslessly (escaped form) through build (folder and
    CSV sources), extract (folder and images file) and predict's CSV; reruns are no-ops."""
    from featx.utils import unescape_name
    from tests._transfer_helpers import tiny_model

    src = tmp_path / "src"
    rels = _odd_source(src)
    r = run("build", src, "-o", tmp_path / "data", "--size", 16, "--val", 0, "--test", 2, "-j", 2)
    assert r.exit_code == 0, r.output
    built = _stored(tmp_path / "data" / "train.h5") + _stored(tmp_path / "data" / "test.h5")
    assert sorted(built) == rels
    with h5py.File(tmp_path / "data" / "train.h5") as f:  # the text in the file is valid UTF-8, escaped
        text = [p.decode("utf-8") for p in f["paths"][:]]
    assert {"cat/bad\\xff.png", "cat/back\\\\slash\\\\xff.png"} <= set(text) | set(_escaped(tmp_path / "data" / "test.h5"))
    again = run("build", src, "-o", tmp_path / "data", "--size", 16, "--val", 0, "--test", 2, "-j", 2)
    assert again.exit_code == 0 and "already complete, kept: train, test" in again.output, again.output

    csv = src / "list.csv"  # a CSV listing the names as raw bytes
    csv.write_bytes(b"".join(b'"' + rel + b'",' + rel.split(b"/")[0] + b"\n" for rel in rels))
    r = run("build", csv, "-o", tmp_path / "csvdata", "--size", 16, "--val", 0, "--test", 0, "-j", 1)
    assert r.exit_code == 0, r.output
    assert sorted(_stored(tmp_path / "csvdata" / "train.h5")) == rels

    model = tiny_model(tmp_path / "tiny.keras", classes=2)
    for source, out in ((src, "f.h5"), (tmp_path / "data" / "train.h5", "g.h5")):
        r = run("extract", source, "-o", tmp_path / out, "-b", f"keras:{model}", "--no-progress")
        assert r.exit_code == 0, r.output
        assert sorted(_stored(tmp_path / out)) == (rels if source == src else sorted(_stored(source)))
    again = run("extract", src, "-o", tmp_path / "f.h5", "-b", f"keras:{model}", "--no-progress")
    assert again.exit_code == 0 and "nothing to do" in again.output, again.output

    r = run("fit", tmp_path / "f.h5", "-o", tmp_path / "clf.pkl", "--test-size", 4, "--jobs", 1, "--cv", 2)
    assert r.exit_code == 0, r.output
    r = run("predict", tmp_path / "clf.pkl", src / "cat", src / "dog", "--csv", tmp_path / "pred.csv")
    assert r.exit_code == 0, r.output
    assert "bad\\xff.png" in r.output and "14 classified, 0 failed" in r.output
    import csv as csvlib

    with open(tmp_path / "pred.csv", newline="", encoding="utf-8") as fh:
        names = [os.fsencode(unescape_name(row["path"])) for row in csvlib.DictReader(fh)]
    assert sorted(os.path.relpath(n, os.fsencode(src)) for n in names) == rels

    # predict's exit codes: 0 when something was classified (an empty folder beside it is listed),
    # 1 when nothing could be (the table and CSV are still written)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.jpg").write_bytes(b"\xff\xd8\xff garbage")
    r = run("predict", tmp_path / "clf.pkl", src / "dog", tmp_path / "empty")
    assert r.exit_code == 0 and "6 classified, 1 failed" in r.output, r.output
    assert "ERROR: no image files in this folder" in r.output
    r = run("predict", tmp_path / "clf.pkl", tmp_path / "broken", tmp_path / "empty", "--csv", tmp_path / "bad.csv")
    one_line_error(r, "no input could be classified (2 failed")
    assert len((tmp_path / "bad.csv").read_text().splitlines()) == 3  # header + the two failures


def _escaped(path: Path) -> list[str]:
    with h5py.File(path) as f:
        return [p.decode("utf-8") for p in f["paths"][:]]


# ------------------------------------------------------------------------------ fit options
@pytest.mark.parametrize("grid", ["nan", "1,,2", "inf", "1e400", "0.1,-1", ",", "1,nan"])
def test_bad_fit_grid_is_a_usage_error(short_labels, grid):
    r = run("fit", short_labels["tmp"] / "good.h5", "-o", short_labels["tmp"] / "g.pkl", "--grid", grid)
    one_line_error(r, "Invalid value for '--grid'", code=2)
    assert not (short_labels["tmp"] / "g.pkl").exists()


def test_library_grid_check_refuses_non_finite_values():
    from featx.errors import ParameterError
    from featx.fit import fit_classifier

    X, y = separable_features(n_per_class=6, classes=2, dim=3)
    for grid in ([float("nan")], [float("inf")], [1.0, 0.0], []):
        with pytest.raises(ParameterError, match="finite, positive C values"):
            fit_classifier(X, y, label_names=["a", "b"], grid=grid, cv=2, jobs=1)


# ------------------------------------------------------------------------------ unreachable Ray addresses
def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: connections are refused


def test_silent_ray_address_gives_up_after_the_connect_timeout():
    import socket
    import time

    from featx.errors import FeatxError
    from featx.runtime.cluster import check_reachable, connect_ray

    class NoRay:  # connect_ray must give up before asking Ray (which would retry for minutes)
        is_initialized = staticmethod(lambda: False)

        @staticmethod
        def init(**kw):
            pytest.fail("ray.init called for an address that does not answer")

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = []
        for _ in range(3):  # fill the backlog: further connections get no answer at all
            c = socket.socket()
            c.settimeout(0.5)
            try:
                c.connect(("127.0.0.1", port))
            except OSError:
                pass
            queued.append(c)
        t0 = time.monotonic()
        with pytest.raises(FeatxError, match=rf"cannot connect to Ray at 127.0.0.1:{port}: no answer within 1s"):
            connect_ray(NoRay, f"127.0.0.1:{port}", timeout=1.0)
        assert time.monotonic() - t0 < 5
        for c in queued:
            c.close()
    with pytest.raises(FeatxError, match="Connection refused"):
        check_reachable(f"ray://127.0.0.1:{_closed_port()}", 1.0)
    with pytest.raises(FeatxError, match="is not HOST:PORT"):
        check_reachable("host:notaport", 1.0)


@pytest.mark.parametrize("command", ["extract", "fit"])
def test_unreachable_ray_address_is_one_line_in_every_entry_point(short_labels, command, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # even where a test Ray is running
    monkeypatch.setattr(ray, "init", lambda **kw: pytest.fail("ray.init called for a refused address"))
    address, tmp = f"127.0.0.1:{_closed_port()}", short_labels["tmp"]
    args = {"extract": ["extract", tmp / "good_images.h5", "-o", tmp / "r.h5", "--engine", "ray"],
            "fit": ["fit", tmp / "good.h5", "-o", tmp / "r.pkl", "--backend", "ray"]}[command]
    r = run(*args, "--address", address, "--connect-timeout", 2)
    one_line_error(r, f"cannot connect to Ray at {address}: Connection refused")

"""README claims of featx train / extract checked through the CLI (issue 22): book-format images
files, the augmentation presets and their overrides, --label-smoothing, and a full disk while
extract writes its features and while train writes its files. Tiny models, 16 px, one epoch."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from tests._scratch_helpers import PLAIN, make_stores, register_plain
from tests._transfer_helpers import tiny_model
from tests.conftest import disk_full_when_syncing


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("stores"), size=16, n_train=16, n_val=8, n_test=8)


def _invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _train(stores, run, *extra, train=None):
    register_plain()
    return _invoke(["train", PLAIN, "--train", train or stores["train"], "-o", run, "--input-size", "16",
                    "--batch-size", "16", "--epochs", "1", "--precise-bn-images", "0", "--no-progress", *extra])


def _book_copy(store, path: Path) -> Path:
    """The same rows as the book's HDF5DatasetWriter writes them: float64 pixels, labels, no attributes."""
    from featx.store import open_store

    with open_store(store) as r:
        x, y = r.load()
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=x.astype(np.float64))
        f.create_dataset("labels", data=y.astype(np.int64))
    return path


def _one_line(res) -> str:
    """The error line (exit 1); train's Keras epoch lines may come before it, nothing after."""
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("Error")]
    assert errors == [len(lines) - 1] and "Traceback" not in res.output, res.output
    return lines[-1]


# ------------------------------------------------------------------------------ book-format files
def test_train_on_a_book_images_file_learns_as_on_the_featx_store(stores, tmp_path):
    import keras

    book = _book_copy(stores["train"], tmp_path / "train.hdf5")
    a, b = tmp_path / "featx", tmp_path / "book"
    assert _train(stores, a).exit_code == 0
    res = _train(stores, b, train=book)
    assert res.exit_code == 0, res.output
    assert f"{book} has no featx attributes: reading it as a foreign file" in res.output
    ca, cb = (json.loads((r / "config.json").read_text()) for r in (a, b))
    assert cb["label_names"] == ["0", "1", "2"] and cb["train_rows"] == 16
    assert cb["mean_rgb"] == pytest.approx(ca["mean_rgb"], abs=1e-4)  # computed from the pixels
    hist = [json.loads((r / "history.json").read_text())["loss"] for r in (a, b)]
    assert hist[1] == pytest.approx(hist[0], abs=1e-4)  # the same pixels, labels and step
    for p, q in zip(*(keras.saving.load_model(r / "model.keras").get_weights() for r in (a, b)), strict=True):
        np.testing.assert_allclose(q, p, atol=1e-4, rtol=0)


def test_extract_on_a_book_images_file_gives_the_featx_store_features(stores, tmp_path):
    from featx.store import open_store

    model = tiny_model(tmp_path / "tiny.keras")
    book = _book_copy(stores["test"], tmp_path / "test.hdf5")
    out = {}
    for name, src in (("featx", stores["test"]), ("book", book)):
        out[name] = tmp_path / f"{name}.h5"
        res = _invoke(["extract", src, "-o", out[name], "-b", f"keras:{model}:fc", "--batch-size", "3", "--no-progress"])
        assert res.exit_code == 0, res.output
    assert f"{book} has no featx attributes" in res.output
    with open_store(out["featx"], kind="features") as r, open_store(out["book"], kind="features") as s:
        (xa, ya), (xb, yb) = r.load(), s.load()
        assert xa.shape == (8, 6) and np.abs(xa).max() > 0
        np.testing.assert_array_equal(xb, xa)
        np.testing.assert_array_equal(yb, ya)
        assert s.label_names == ["0", "1", "2"]


# ------------------------------------------------------------------------------ augmentation, smoothing
def _spy(monkeypatch):
    """Record the augmentation layers featx train's input pipeline gets and the loss it compiles."""
    import keras

    import featx.preprocess.pipeline as pipeline

    seen = {}
    layers = pipeline.augmentation_layers

    def record_layers(cfg, seed=None):
        seen["aug"] = layers(cfg, seed=seed)
        return seen["aug"]

    compile_ = keras.Model.compile

    def record_compile(self, *a, **k):
        seen["loss"] = k.get("loss")
        return compile_(self, *a, **k)

    monkeypatch.setattr(pipeline, "augmentation_layers", record_layers)
    monkeypatch.setattr(keras.Model, "compile", record_compile)
    return seen


def _factors(aug) -> dict:
    """{layer name: its factors} of an augmentation Sequential (None: no augmentation)."""
    if aug is None:
        return {}
    out = {}
    for layer in aug.layers:
        cfg = layer.get_config()
        if layer.name == "flip":
            out["flip"] = cfg["mode"]
        elif layer.name == "rotation":
            out["rotation"] = tuple(cfg["factor"])  # (-f, f) in turns
        else:
            out[layer.name] = (cfg["height_factor"], cfg["width_factor"])  # zoom: width None = as height
    return out


@pytest.mark.parametrize("extra, layers, preset", [
    ((), {}, "none"),
    (("--augment", "light"), {"flip": "horizontal", "shift": (0.0625, 0.0625)}, "light"),
    (("--augment", "book"), {"flip": "horizontal", "rotation": (-20 / 360, 20 / 360), "zoom": (0.15, None),
                             "shift": (0.1, 0.1)}, "book"),
    (("--augment", "book", "--no-flip", "--rotation", "18", "--zoom", "0.05", "--shift", "0.2"),
     {"rotation": (-18 / 360, 18 / 360), "zoom": (0.05, None), "shift": (0.2, 0.2)}, "book"),
    (("--augment", "none", "--flip", "--rotation", "9"), {"flip": "horizontal", "rotation": (-9 / 360, 9 / 360)}, "none"),
])
def test_augment_presets_and_overrides_give_these_layers(stores, tmp_path, monkeypatch, extra, layers, preset):
    seen = _spy(monkeypatch)
    res = _train(stores, tmp_path / "run", *extra)
    assert res.exit_code == 0, res.output
    got = _factors(seen["aug"])
    assert got.keys() == layers.keys()
    for name, want in layers.items():
        assert got[name] == (want if name == "flip" or None in want else pytest.approx(want)), name
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    assert conf["augment"]["preset"] == preset


def test_label_smoothing_reaches_the_loss(stores, tmp_path, monkeypatch):
    import keras

    seen = _spy(monkeypatch)
    assert _train(stores, tmp_path / "a", "--label-smoothing", "0.3").exit_code == 0
    loss = seen["loss"]
    assert isinstance(loss, keras.losses.CategoricalCrossentropy) and loss.get_config()["label_smoothing"] == 0.3
    y = np.array([[0.0, 1.0, 0.0]], np.float32)
    p = np.array([[0.1, 0.8, 0.1]], np.float32)  # smoothed target 0.1/0.8/0.1: the loss is its entropy
    assert float(loss(y, p)) == pytest.approx(-(0.2 * np.log(0.1) + 0.8 * np.log(0.8)), rel=1e-5)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["label_smoothing"] == 0.3
    assert _train(stores, tmp_path / "b", "--label-smoothing", "0").exit_code == 0
    assert seen["loss"].get_config()["label_smoothing"] == 0.0


# ------------------------------------------------------------------------------ disk full
def test_disk_full_in_extracts_writer_one_line_partial_kept_rerun_resumes(stores, tmp_path, monkeypatch):
    """ENOSPC from the HDF5 write of the features: one line naming the partial file, nothing at the
    final path; with space again the same command finishes with the uninterrupted run's features."""
    from featx.store import open_store

    model = tiny_model(tmp_path / "tiny.keras")
    args = [stores["test"], "-b", f"keras:{model}:fc", "--batch-size", "3", "--no-progress"]
    ref = tmp_path / "ref.h5"
    assert _invoke(["extract", *args, "-o", ref]).exit_code == 0
    out = tmp_path / "feats.h5"
    real = h5py.Dataset.__setitem__

    def full(self, key, value):
        if self.name == "/features":
            raise OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: errno = 28)")
        return real(self, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", full)
    line = _one_line(_invoke(["extract", *args, "-o", out]))
    assert line == f"Error: cannot write {out}.partial: [Errno 28] No space left on device"
    assert not out.exists() and Path(f"{out}.partial").exists()
    monkeypatch.setattr(h5py.Dataset, "__setitem__", real)
    res = _invoke(["extract", *args, "-o", out])
    assert res.exit_code == 0, res.output
    with open_store(ref, kind="features") as r, open_store(out, kind="features") as s:
        np.testing.assert_array_equal(s.load()[0], r.load()[0])


def test_disk_full_while_train_writes_its_files_one_line_nothing_half_written(stores, tmp_path, monkeypatch):
    """ENOSPC while featx train writes history.json (every epoch) and model.keras (at the end): one
    line naming the file, no file at the final path, no temporary file left behind."""
    run = tmp_path / "run"
    real_fsync = disk_full_when_syncing(monkeypatch, "history.json")
    line = _one_line(_train(stores, run))
    assert "history.json" in line and "[Errno 28] No space left on device" in line
    assert not (run / "history.json").exists() and not (run / "model.keras").exists()
    assert [p.name for p in run.iterdir() if "history" in p.name] == []
    monkeypatch.setattr(os, "fsync", real_fsync)

    real_writestr = zipfile.ZipFile.writestr

    def full_for_the_model(self, *a, **k):
        if str(getattr(self.fp, "name", "")) == str(run / ".model.partial.keras"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_writestr(self, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full_for_the_model)
    line = _one_line(_train(stores, run, "--overwrite"))
    assert line == f"Error: cannot write {run / 'model.keras'}: [Errno 28] No space left on device", line
    assert not (run / "model.keras").exists() and not list(run.glob("*partial*"))
    assert (run / "history.json").exists()  # the epoch's files were written
    monkeypatch.setattr(zipfile.ZipFile, "writestr", real_writestr)

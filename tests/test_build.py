"""``featx build`` through the CLI: outputs, reports, bad input, interrupted runs, the CLI group."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from featx import __version__
from featx.cli import cli
from featx.store import open_store
from tests.conftest import color_image, save


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def assert_one_line_error(result, pattern, code=1):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert pattern in result.output, result.output


def test_build_writes_splits_means_and_report(class_folder, tmp_path):
    (class_folder / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (class_folder / "blue" / "empty.png").write_bytes(b"")
    (class_folder / "green" / "readme.md").write_text("hi")
    out = tmp_path / "out"
    r = run("build", class_folder, "-o", out, "--size", 16, "--val", 0.2, "--test", 0.2, "--seed", 1, "-j", 2)
    assert r.exit_code == 0, r.output
    assert "wrote 30 images (train " in r.output
    assert "skipped 3 files (1 not an image file, 1 undecodable image, 1 empty file" in r.output or \
        "skipped 3 files (1 not an image file, 1 empty file, 1 undecodable image" in r.output
    assert str(out / "train.h5") in r.output

    report = json.loads((out / "build.json").read_text())
    # 32 candidates (readme.md is not one): 6 test, 6 val, 20 train, minus the 2 undecodable files
    assert sum(report["totals"].values()) == 30 and report["totals"]["test"] + report["totals"]["val"] >= 10
    assert {k: sum(v.values()) for k, v in report["counts"].items()} == report["totals"]
    assert sorted(s["path"] for s in report["skipped"]) == ["blue/empty.png", "green/readme.md", "red/broken.jpg"]
    assert report["skipped_count"] == 3 and report["config"]["size"] == 16

    train_paths = []
    for split in ("train", "val", "test"):
        with open_store(out / f"{split}.h5", kind="images") as s:
            assert s.row_shape == (16, 16, 3) and s.data.dtype == np.uint8
            assert s.label_names == ["blue", "green", "red"]
            # label of each row matches the folder it came from
            assert all(s.label_names[y] == p.split("/")[0] for p, y in zip(s.paths, s.labels))
            assert s.config["split"] == split
            if split == "train":
                train_paths = s.paths
                means = s.read().reshape(-1, 3).mean(axis=0)
                np.testing.assert_allclose(s.mean_rgb, means)
            else:
                assert "mean_rgb" not in s.attrs
    mean = json.loads((out / "mean.json").read_text())
    np.testing.assert_allclose([mean["R"], mean["G"], mean["B"]], means)
    assert train_paths != sorted(train_paths)  # shuffled, so contiguous blocks mix classes


def test_build_is_reproducible_and_rerun_is_a_no_op(flat_folder, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert run("build", flat_folder, "-o", out, "--size", 8, "--seed", 3, "-j", 1).exit_code == 0
    for split in ("train", "val", "test"):
        with open_store(a / f"{split}.h5") as x, open_store(b / f"{split}.h5") as y:
            assert x.paths == y.paths
            np.testing.assert_array_equal(x.read(), y.read())
    r = run("build", flat_folder, "-o", a, "--size", 8, "--seed", 3)
    assert r.exit_code == 0 and "already complete, kept: train, val, test" in r.output
    r = run("build", flat_folder, "-o", a, "--size", 12, "--seed", 3)
    assert_one_line_error(r, "made with different parameters or sources; pass --overwrite")
    r = run("build", flat_folder, "-o", a, "--size", 12, "--seed", 3, "--overwrite")
    assert r.exit_code == 0
    with open_store(a / "train.h5") as s:
        assert s.row_shape == (12, 12, 3)


def test_interrupted_build_resumes_to_identical_content(class_folder, tmp_path, monkeypatch):
    """Stopped while the 10th image of a slab is decoded: the 9 decoded before it are written and
    recorded (a slab cut short is not lost), the rest is not, and a rerun ends with the content of
    an uninterrupted build."""
    from featx.data import decode

    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    assert run("build", class_folder, "-o", clean, "--size", 8, "-j", 1).exit_code == 0

    real = decode.read_rgb
    calls = []

    def interrupted(path, **kw):
        calls.append(path)
        if len(calls) == 10:
            raise KeyboardInterrupt
        return real(path, **kw)

    monkeypatch.setattr(decode, "read_rgb", interrupted)
    monkeypatch.setattr("featx.build.SLAB_ROWS", 16)  # the 10th image is inside the first slab
    r = run("build", class_folder, "-o", resumed, "--size", 8, "-j", 1)
    assert r.exit_code == 130 and "rerun the same command to resume" in r.output
    assert not (resumed / "train.h5").exists()
    progress = json.loads((resumed / "train.h5.partial.json").read_text())
    assert progress["next_index"] == 9 and progress["rows"] == 9  # the slab's decoded rows were kept

    monkeypatch.setattr(decode, "read_rgb", real)
    assert run("build", class_folder, "-o", resumed, "--size", 8, "-j", 1).exit_code == 0
    for split in ("train", "val", "test"):
        with open_store(clean / f"{split}.h5") as x, open_store(resumed / f"{split}.h5") as y:
            assert x.paths == y.paths and x.mean_rgb == y.mean_rgb
            np.testing.assert_array_equal(x.read(), y.read())
            np.testing.assert_array_equal(x.labels, y.labels)


def test_preset_splits_and_csv_sources(tmp_path, rng):
    for split in ("train", "test"):
        for c, name in enumerate(("a", "b")):
            for i in range(4):
                save(color_image(rng, tint=c), tmp_path / "ds" / split / name / f"{i}.png")
    r = run("build", tmp_path / "ds", "-o", tmp_path / "o1", "--size", 8)
    assert r.exit_code == 0 and "train 8, test 8" in r.output
    assert not (tmp_path / "o1" / "val.h5").exists()

    lines = ["path,label"] + [f"ds/train/{n}/{i}.png,{n}" for n in ("a", "b") for i in range(4)]
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    r = run("build", tmp_path / "list.csv", "-o", tmp_path / "o2", "--size", 8, "--val", 0, "--test", 2)
    assert r.exit_code == 0 and "train 6, test 2" in r.output, r.output


@pytest.mark.parametrize(
    "setup,message",
    [
        ("empty", "no images found"),
        ("one_class", "found only 1 class"),
        ("all_bad", "no usable rows"),
        ("not_csv", "not a CSV"),
    ],
)
def test_bad_sources_give_one_line_and_no_outputs(tmp_path, rng, setup, message):
    src = tmp_path / "src"
    src.mkdir()
    if setup == "one_class":
        for i in range(4):
            save(color_image(rng), src / "cats" / f"{i}.png")
    elif setup == "all_bad":
        for c in ("a", "b"):
            for i in range(5):
                (src / c).mkdir(exist_ok=True)
                (src / c / f"{i}.jpg").write_bytes(b"garbage")
    elif setup == "not_csv":
        src = tmp_path / "data.txt"
        src.write_text("x")
    out = tmp_path / "out"
    r = run("build", src, "-o", out, "--size", 8, "--val", 0, "--test", 0)
    assert_one_line_error(r, message)
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() or list(out.iterdir()) == []  # nothing written: no file, partial or report


@pytest.mark.parametrize(
    "args,message",
    [
        (["--size", "0"], "Invalid value for '--size'"),
        (["--val", "1.5"], "must be a fraction in [0, 1) or a whole count"),
        (["--resize", "squash"], "Invalid value for '--resize'"),
        (["--workers", "0"], "Invalid value for '--workers'"),
    ],
)
def test_bad_options_are_usage_errors(class_folder, tmp_path, args, message):
    r = run("build", class_folder, "-o", tmp_path / "o", *args)
    assert_one_line_error(r, message, code=2)


def test_missing_source_and_no_output_flag(tmp_path):
    assert_one_line_error(run("build", tmp_path / "nope", "-o", tmp_path / "o"), "does not exist", code=2)
    assert_one_line_error(run("build", tmp_path), "Missing option '-o'", code=2)


def test_too_small_classes_for_split(tmp_path, rng):
    for c in ("a", "b"):
        save(color_image(rng), tmp_path / "s" / c / "0.png")
    save(color_image(rng), tmp_path / "s" / "a" / "1.png")
    r = run("build", tmp_path / "s", "-o", tmp_path / "o", "--size", 8, "--val", 0, "--test", 0.5)
    assert_one_line_error(r, "cannot make a stratified split")


def test_cli_group_version_help_models():
    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = run("--help")
    assert r.exit_code == 0 and "build" in r.output and "models" in r.output
    r = run("build", "--help")
    text = " ".join(r.output.split())
    assert "[default: 256; x>=8]" in text and "--seed INTEGER Random seed (splits, shuffles). [default: 42]" in text
    r = run("models")
    assert r.exit_code == 0 and "minigooglenet" in r.output and "alexnet" in r.output


def test_build_slabs_write_the_same_rows_as_the_process_pool(class_folder, tmp_path):
    """Decoding straight into slab buffers on threads (build's way) stores exactly the pixels,
    labels, paths, skips and mean of 0.2's process pool (``decode_images``) for the same input,
    with several slabs and a skipped file inside one."""
    from featx.data.pool import decode_images

    (class_folder / "green" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = run("build", class_folder, "-o", tmp_path / "out", "--size", 16, "-j", 2, "--val", 0, "--test", 0)
    assert r.exit_code == 0, r.output
    with open_store(tmp_path / "out" / "train.h5") as a:
        x, y = a.load()
        root = class_folder.resolve()
        got = list(decode_images([str(root / p) for p in a.paths], size=16, workers=2, engine="processes"))
        assert x.dtype == np.uint8 and len(x) == 30 and all(img is not None for _, img, _ in got)
        assert x.tobytes() == np.stack([img for _, img, _ in got]).tobytes()
        assert [a.label_names[v] for v in y] == [p.split("/")[0] for p in a.paths]
        np.testing.assert_allclose(a.mean_rgb, x.reshape(-1, 3).mean(axis=0), rtol=0, atol=1e-9)
    report = json.loads((tmp_path / "out" / "build.json").read_text())
    assert [s["path"] for s in report["skipped"]] == ["green/broken.jpg"]

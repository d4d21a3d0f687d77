"""``featx extract``: source order, labels and paths, skips, resume after a hard kill, HDF5 sources, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.data import discover, load_image
from featx.errors import FeatxError
from featx.extract import extract
from featx.store import feature_settings, open_store
from tests._transfer_helpers import TINY_SIZE, reference_features, tiny_model
from tests.conftest import color_image, save

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "model.keras")


@pytest.fixture
def folder(tmp_path) -> Path:
    """3 classes x 5 images of various sizes and formats."""
    rng = np.random.default_rng(3)
    src = tmp_path / "imgs"
    for c, name in enumerate(["bird", "cat", "dog"]):
        for i in range(5):
            ext = [".png", ".jpg", ".bmp"][i % 3]
            save(color_image(rng, w=20 + 3 * i, h=18 + 2 * c, tint=c), src / name / f"{name}_{i}{ext}")
    return src


def _expected(src: Path, model_path: Path, skip=()):
    """Rows featx must write: discovery order, featx decoding, Keras forward pass (the oracle)."""
    d = discover(src)
    keep = [i for i, p in enumerate(d.paths) if p not in skip]
    imgs = np.stack([load_image(d.abspath(i), TINY_SIZE) for i in keep])
    feats = reference_features(model_path, "fc", imgs)
    return feats, np.asarray(d.labels)[keep], [d.paths[i] for i in keep], d.label_names


def test_folder_rows_labels_paths_in_source_order(folder, model_path, tmp_path):
    out = tmp_path / "f.h5"
    r = extract(folder, out, backbone=f"keras:{model_path}", batch_size=4, progress=False)
    feats, labels, paths, names = _expected(folder, model_path)
    assert (r.rows, r.skipped, r.reused) == (15, [], False)
    with open_store(out, kind="features") as f:
        np.testing.assert_allclose(f.data[:], feats, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(f.labels, labels)
        assert f.paths == paths and f.label_names == names == ["bird", "cat", "dog"]
        s = feature_settings(f.attrs)
        assert s["name"] == f"keras:{model_path}:fc" and s["weights"] == "embedded" and s["dim"] == 6
        assert s["image_size"] == TINY_SIZE and s["preprocessing"] == "none" and s["resize"] == "aspect"
        assert "backbone_settings" not in f.attrs and "backbone" not in f.attrs  # recorded once, in config
    again = extract(folder, out, backbone=f"keras:{model_path}", batch_size=7, progress=False)
    assert again.reused and again.rows == 15  # complete: nothing to do


def test_corrupt_image_is_skipped_and_listed(folder, model_path, tmp_path):
    jpg = folder / "cat" / "cat_1.jpg"
    jpg.write_bytes(jpg.read_bytes()[:60])  # truncated
    (folder / "dog" / "notes.txt").write_text("not an image")
    out = tmp_path / "f.h5"
    r = extract(folder, out, backbone=f"keras:{model_path}", batch_size=4, decoder="pool", progress=False)
    feats, labels, paths, _ = _expected(folder, model_path, skip={"cat/cat_1.jpg"})
    assert r.rows == 14
    assert [(s["path"], s["stage"]) for s in r.skipped] == [("dog/notes.txt", "discover"), ("cat/cat_1.jpg", "decode")]
    assert "undecodable" in r.skipped[1]["reason"] or "truncated" in r.skipped[1]["reason"]
    assert "skipped 2 files" in r.summary()
    with open_store(out, kind="features") as f:
        np.testing.assert_allclose(f.data[:], feats, rtol=1e-5, atol=1e-6)
        assert f.paths == paths and f.labels.tolist() == labels.tolist()
        assert [s["path"] for s in json.loads(f.attrs["skipped"])] == ["dog/notes.txt", "cat/cat_1.jpg"]


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from featx.extract import extract

    def on_batch(next_index):  # runs after the writer took the batch: die like a SIGKILLed job
        if next_index >= 6:
            os.kill(os.getpid(), signal.SIGKILL)

    extract(sys.argv[1], sys.argv[2], backbone="keras:" + sys.argv[3], batch_size=3, slab_rows=3,
            progress=False, on_batch=on_batch)
    """
)


def test_killed_extract_resumes_to_identical_content(folder, model_path, tmp_path):
    (folder / "bird" / "bird_2.bmp").write_bytes(b"BM broken")  # a skip before the kill point
    ref = tmp_path / "ref.h5"
    extract(folder, ref, backbone=f"keras:{model_path}", batch_size=5, progress=False)

    out = tmp_path / "killed.h5"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(folder), str(out), str(model_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not out.exists()
    progress = json.loads(Path(str(out) + ".partial.json").read_text())
    assert progress["next_index"] >= 6 and progress["skipped"][0]["path"] == "bird/bird_2.bmp"

    r = extract(folder, out, backbone=f"keras:{model_path}", batch_size=4, progress=False)
    assert r.resumed_from == progress["next_index"] and r.processed == 15 - r.resumed_from
    assert [s["path"] for s in r.skipped] == ["bird/bird_2.bmp"]
    with h5py.File(ref) as a, h5py.File(out) as b:
        for name in ("features", "labels", "label_names", "paths"):
            np.testing.assert_array_equal(a[name][:], b[name][:])
    assert not Path(str(out) + ".partial").exists()


def test_images_h5_source_is_resized_and_keeps_labels_and_paths(folder, model_path, tmp_path):
    import tensorflow as tf

    from featx.build import build

    build(folder, tmp_path / "data", size=20, val=0, test=3, progress=False, workers=1)
    train = tmp_path / "data" / "train.h5"
    out = tmp_path / "f.h5"
    r = extract(train, out, backbone=f"keras:{model_path}", batch_size=5, progress=False)
    with open_store(train, kind="images") as src, open_store(out, kind="features") as f:
        assert r.rows == len(src) == len(f) == 12
        assert f.paths == src.paths and f.labels.tolist() == src.labels.tolist()
        assert f.label_names == src.label_names
        resized = tf.image.resize(tf.cast(src.data[:], tf.float32), (TINY_SIZE, TINY_SIZE), antialias=True).numpy()
        np.testing.assert_allclose(f.data[:], reference_features(model_path, "fc", resized), rtol=1e-4, atol=1e-5)
        assert feature_settings(f.attrs)["resize"] == "stored"

    with pytest.raises(FeatxError, match="already holds features"):
        extract(out, tmp_path / "g.h5", backbone=f"keras:{model_path}", progress=False)


def test_cli_extract_registered_backbone_with_random_weights(folder, tmp_path):
    (folder / "dog" / "dog_0.png").write_bytes(b"")
    out = tmp_path / "f.h5"
    args = ["extract", str(folder), "-o", str(out), "--backbone", "mobilenetv2", "--weights", "none",
            "--image-size", "32", "--batch-size", "8", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"wrote 14 x 1280 features (mobilenetv2, 32px) to {out}; skipped 1 files (1 empty file)" in result.output
    assert "skipped dog/dog_0.png: empty file (0 bytes)" in result.output
    assert "images/s" in result.output and "weights=none" in result.output
    with open_store(out, kind="features") as f:
        s = feature_settings(f.attrs)
        assert f.row_shape == (1280,) and s["name"] == "mobilenetv2" and s["weights"] == "none"

    bad = CliRunner().invoke(cli, ["extract", str(folder), "-o", str(tmp_path / "g.h5"), "--backbone", "resnet9"])
    assert bad.exit_code == 2 and "choose one of resnet50" in bad.output
    single = tmp_path / "one_class"
    save(color_image(np.random.default_rng(0)), single / "x" / "a.png")
    ok = CliRunner().invoke(cli, ["extract", str(single), "-o", str(tmp_path / "s.h5"), "-b", "vgg16", "-w", "none",
                                  "--image-size", "32", "--no-progress"])
    assert ok.exit_code == 0, ok.output  # a single-class folder is fine for extract


@pytest.fixture
def mappers(monkeypatch) -> list:
    """Every :class:`FeatureMapper` ``extract`` makes, kept for inspection after the run."""
    import featx.extract.api as api
    from featx.extract import FeatureMapper

    made = []

    class Recorded(FeatureMapper):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(api, "FeatureMapper", Recorded)
    return made


def test_gpu_code_paths_forced_on_cpu(folder, model_path, tmp_path, mappers):
    """Mixed precision and XLA (with the padded last batch), run on the CPU: float16 layers, one XLA
    program traced once, features within float16 error of float32 ones; then the overlapped read-back."""
    from featx.backbones import build_backbone
    from featx.extract import FeatureMapper
    from featx.extract.reader import image_dataset

    # VGG16, not MobileNetV2: with random weights MobileNetV2's features are ~1e-12 (0 in float16),
    # and its XLA compile takes longer (measured: 13-22 s vs 3-10 s at 32 px on this CPU)
    kw = dict(backbone="vgg16", weights="none", image_size=32, batch_size=4, progress=False)
    plain = extract(folder, tmp_path / "a.h5", mixed_precision=False, xla=False, **kw)
    fast = extract(folder, tmp_path / "b.h5", mixed_precision=True, xla=True, **kw)
    assert (plain.mixed_precision, plain.xla, fast.mixed_precision, fast.xla) == (False, False, True, True)
    m32, m16 = mappers
    assert (m32.mixed_precision, m32.xla, m16.mixed_precision, m16.xla) == (False, False, True, True)
    # the backbone computes in float16 (every layer with weights), and only when asked
    assert {la.dtype_policy.name for la in m16.backbone.model.layers if la.weights} == {"mixed_float16"}
    assert {la.dtype_policy.name for la in m32.backbone.model.layers if la.weights} == {"float32"}
    # one XLA program, traced once: the short last batch (15 = 3 x 4 + 3) was padded to the compiled shape
    assert m16._fn.experimental_get_tracing_count() == 1
    # without XLA the graph is traced once for any batch size: the short batch ran the same graph
    assert m32._fn.experimental_get_tracing_count() == 1
    batch = np.zeros((4, 32, 32, 3), np.uint8)
    assert "HloModule" in m16._fn.experimental_get_compiler_ir(batch)(stage="hlo")
    with pytest.raises(ValueError, match="jit_compile"):
        m32._fn.experimental_get_compiler_ir(batch)  # the float32 run was not compiled with XLA
    with open_store(tmp_path / "a.h5") as a, open_store(tmp_path / "b.h5") as b:
        assert len(a) == len(b) == 15 and b.data.dtype == np.float32
        assert b.config["mixed_precision"] is True and b.config["xla"] is True
        x, y = a.data[:], b.data[:]
        assert np.isfinite(y).all()
        np.testing.assert_allclose(y, x, rtol=0.05, atol=0.02 * float(np.abs(x).max()))
        # float16 rounding shows (XLA alone moves float32 results by ~1e-7): mixed precision really ran
        assert np.abs(y - x).max() > 1e-4 * float(np.abs(x).max())

    bb = build_backbone(f"keras:{model_path}")
    files = [str(folder / p) for p in discover(folder).paths]
    mapper = FeatureMapper(bb.settings, batch_size=4, backbone=bb)
    seq = list(mapper.iter_features(image_dataset(files, size=16, batch_size=4), overlap=False))
    ovl = list(mapper.iter_features(image_dataset(files, size=16, batch_size=4), overlap=True))
    assert [i.tolist() for i, _, _ in ovl] == [i.tolist() for i, _, _ in seq] == [list(range(k, min(k + 4, 15))) for k in range(0, 15, 4)]
    for (_, f1, _), (_, f2, _) in zip(seq, ovl):
        np.testing.assert_array_equal(f1, f2)

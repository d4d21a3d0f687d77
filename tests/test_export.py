"""``featx export``: SavedModel / ONNX / TFLite / .keras equal to featx's own path, and ``featx predict OUT_DIR``.

One classifier (a tiny saved Keras backbone at 16 px, 24 images) is exported once to every format
by a module-scoped fixture; the tests read that folder. The reference probabilities are computed
here without the export code: the backbone rebuilt from the manifest, then ``predict_proba``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from tests._transfer_helpers import TINY_SIZE, tiny_model
from tests.conftest import color_image, save

pytestmark = pytest.mark.slow
NAMES = ["blue", "green", "red"]
ALL = "savedmodel,onnx,tflite,keras"


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """images/{blue,green,red}/*.png, a tiny backbone, its features and a classifier ``clf.pkl``."""
    import featx

    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(5)
    for c, name in enumerate(NAMES):
        for i in range(8):
            save(color_image(rng, tint=2 - c), root / "images" / name / f"{name}_{i}.png")
    model = tiny_model(root / "backbone" / "model.keras")
    featx.extract_features(str(root / "images"), str(root / "f.h5"), backbone=f"keras:{model}", progress=False)
    featx.fit_features(str(root / "f.h5"), str(root / "clf.pkl"), test_size=6, jobs=1, grid=[30.0])
    return root


@pytest.fixture(scope="module")
def exported(work) -> tuple[Path, str]:
    out = work / "served"
    r = CliRunner().invoke(cli, ["export", str(work / "clf.pkl"), "-o", str(out), "--format", ALL,
                                 "--check-images", str(work / "images"), "--no-progress"])
    assert r.exit_code == 0, r.output
    return out, r.output


def _images(work: Path) -> tuple[list[str], np.ndarray]:
    from featx.data.decode import load_image
    from featx.data.discover import list_image_files

    paths, _ = list_image_files([str(work / "images")])
    return paths, np.stack([load_image(p, TINY_SIZE, "aspect") for p in paths])


def _reference(work: Path, images: np.ndarray) -> np.ndarray:
    """featx predict's computation, written out: backbone from the manifest, then predict_proba."""
    from featx.backbones import backbone_from_settings
    from featx.fit import full_proba, load_classifier

    est, manifest = load_classifier(work / "clf.pkl")
    feats = backbone_from_settings(manifest["backbone"])(images)
    return full_proba(est, feats, len(NAMES))


def test_every_format_equals_featx_path(work, exported):
    from featx.export.formats import FILES, Runner

    out, output = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["export.json", "labels.txt", "model.keras", "model.onnx", "model.tflite", "savedmodel"])
    assert not list(work.glob(".served*"))  # the partial folder was renamed, nothing left beside it
    rec = json.loads((out / "export.json").read_text())
    assert rec["label_names"] == NAMES and (out / "labels.txt").read_text() == "blue\ngreen\nred\n"
    assert rec["input"] == {"name": "images", "dtype": "uint8", "shape": [None, 16, 16, 3], "color": "RGB",
                            "range": "0..255", "image_size": 16, "resize": "aspect"}
    manifest = json.loads((work / "clf.manifest.json").read_text())
    assert rec["source"]["sha256"] == manifest["sha256"] and rec["source"]["kind"] == "classifier"
    assert {"featx", "tensorflow", "keras", "tf2onnx", "onnxruntime"} <= set(rec["versions"])
    assert rec["parity"]["rows"] == 24 and rec["parity"]["sample"].startswith("24 check images")
    for fmt in ("savedmodel", "onnx", "tflite", "keras"):
        assert rec["parity"][fmt]["passed"] and rec["parity"][fmt]["max_abs_diff"] <= rec["parity"][fmt]["tolerance"]
        assert rec["formats"][fmt]["size_bytes"] > 0 and len(rec["formats"][fmt]["sha256"]) == 64
        assert f"{FILES[fmt]:<14}" in output
    assert rec["parity"]["tflite"]["tolerance"] == 1e-3 and rec["parity"]["onnx"]["tolerance"] == 1e-4
    assert rec["formats"]["savedmodel"]["signatures"] == ["serving_default", "predict_bytes"]

    # independently of the export code's own check: every file, run here, against featx's path
    paths, images = _images(work)
    want = _reference(work, images)
    assert 0.5 < want.max(axis=1).mean() < 0.999  # confident but not saturated: the comparison means something
    assert (want.argmax(1) == [NAMES.index(Path(p).parent.name) for p in paths]).mean() >= 0.9
    for fmt in ("savedmodel", "onnx", "tflite", "keras"):
        got = Runner(fmt, out / FILES[fmt])(images)
        assert got.shape == (24, 3) and got.dtype == np.float32
        assert np.abs(got - want).max() < (1e-3 if fmt == "tflite" else 1e-4), fmt
        assert (got.argmax(1) == want.argmax(1)).all(), fmt


def test_onnx_file_runs_with_onnxruntime_alone(exported, work):
    import onnxruntime as ort

    out, _ = exported
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (outp,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("images", "tensor(uint8)", ["batch", 16, 16, 3])
    assert outp.name == "probabilities"
    _, images = _images(work)
    (probs,) = session.run(None, {"images": images[:5]})
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_predict_on_the_export_folder_equals_predict_on_the_classifier(work, exported, tmp_path):
    out, _ = exported
    runner = CliRunner()
    a = runner.invoke(cli, ["predict", str(work / "clf.pkl"), str(work / "images"), "--csv", str(tmp_path / "a.csv")])
    b = runner.invoke(cli, ["predict", str(out), str(work / "images"), "--csv", str(tmp_path / "b.csv")])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert "24 classified, 0 failed (keras model of" in b.output

    def rows(p):
        with open(p, newline="") as fh:
            return {r["path"]: r for r in csv.DictReader(fh)}

    ra, rb = rows(tmp_path / "a.csv"), rows(tmp_path / "b.csv")
    assert ra.keys() == rb.keys() and len(ra) == 24
    for path in ra:
        assert ra[path]["label"] == rb[path]["label"]
        assert abs(float(ra[path]["p1"]) - float(rb[path]["p1"])) <= 2e-6


def test_predict_bytes_on_jpeg_files_at_the_input_size(work, exported, tmp_path):
    from featx.export.formats import Runner
    from featx.predict import predict_images

    out, _ = exported
    rng = np.random.default_rng(11)
    files = [save(color_image(rng, w=TINY_SIZE, h=TINY_SIZE, tint=i % 3), tmp_path / f"p{i}.jpg", quality=92)
             for i in range(9)]
    rows, _ = predict_images(work / "clf.pkl", [str(f) for f in files])
    want = {r.path: r.label for r in rows}
    got = Runner("savedmodel", out / "savedmodel").predict_bytes([f.read_bytes() for f in files])
    assert got.shape == (9, 3)
    assert [NAMES[i] for i in got.argmax(1)] == [want[str(f)] for f in files]
    assert len(set(want.values())) == 3  # the files are not all one class


def test_a_tampered_classifier_is_refused_before_anything_is_built(work, tmp_path):
    from featx.export import export_model

    clf = tmp_path / "clf.pkl"
    shutil.copy(work / "clf.pkl", clf)
    shutil.copy(work / "clf.manifest.json", tmp_path / "clf.manifest.json")
    blob = bytearray(clf.read_bytes())
    blob[-5] ^= 1
    clf.write_bytes(bytes(blob))
    r = CliRunner().invoke(cli, ["export", str(clf), "-o", str(tmp_path / "out"), "--format", "keras"])
    assert r.exit_code == 1 and "was modified after export" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(FeatxError, match="refusing to load it"):
        export_model(clf, tmp_path / "out2", formats="keras")


def test_failed_parity_leaves_nothing_at_the_final_path(work, tmp_path, monkeypatch):
    import featx.export.api as api

    class Off(api.Runner):
        def __call__(self, images):
            return super().__call__(images) + np.float32(0.01)

    monkeypatch.setattr(api, "Runner", Off)
    out = tmp_path / "out"
    with pytest.raises(FeatxError, match=r"parity check failed: .*keras 0\.01 > 0\.0001.*nothing was written"):
        api.export_model(work / "clf.pkl", out, formats="keras", progress=False)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_without_the_extra_onnx_is_one_line(work, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    r = CliRunner().invoke(cli, ["export", str(work / "clf.pkl"), "-o", str(tmp_path / "out"), "--format", "onnx"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip() == "Error: --format onnx needs tf2onnx: pip install 'featx[export]'"
    assert not (tmp_path / "out").exists()


def test_overwrite_rules(work, exported, tmp_path):
    from featx.errors import OutputExistsError
    from featx.export import export_model

    out = tmp_path / "served"
    shutil.copytree(exported[0], out)
    with pytest.raises(OutputExistsError, match="pass --overwrite"):
        export_model(work / "clf.pkl", out, formats="keras")
    before = json.loads((out / "export.json").read_text())["created"]
    res = export_model(work / "clf.pkl", out, formats="keras", overwrite=True, progress=False)
    assert res.formats == ["keras"] and sorted(p.name for p in out.iterdir()) == ["export.json", "labels.txt", "model.keras"]
    assert json.loads((out / "export.json").read_text())["parity"]["sample"].startswith("16 synthetic")
    assert before  # the old export was replaced whole, not merged
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FeatxError, match="not a folder featx wrote"):
        export_model(work / "clf.pkl", mine, formats="keras", overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_a_train_run_exports_and_predicts(tmp_path):
    """A real featx train run (1 epoch of a tiny CNN; its model.keras subtracts the means in a
    Normalization layer, whose captured constants Keras' own ONNX export turns into graph inputs)."""
    import keras

    from featx.export import export_model, load_exported
    from tests._scratch_helpers import TINY, make_stores, register_tiny

    register_tiny()
    stores = make_stores(tmp_path / "data", n_train=48, n_val=12, n_test=12)
    run = tmp_path / "run"
    r = CliRunner().invoke(cli, ["train", TINY, "--train", stores["train"], "--val", stores["val"], "-o", str(run),
                                 "--input-size", "16", "--batch-size", "16", "--epochs", "1", "--no-progress",
                                 "--precise-bn-images", "0"])
    assert r.exit_code == 0, r.output
    res = export_model(run, tmp_path / "out", formats="onnx,keras", progress=False)
    names = json.loads((run / "config.json").read_text())["label_names"]
    assert res.record["source"]["kind"] == "run" and res.record["label_names"] == names
    for fmt in ("onnx", "keras"):
        assert res.parity[fmt]["passed"] and res.parity[fmt]["top1_agreement"] == 1.0
    images = np.random.default_rng(3).integers(0, 256, (6, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    model = keras.saving.load_model(run / "model.keras", compile=False)
    want = np.asarray(model([images.astype("float32")]))
    for fmt in ("onnx", "keras"):
        exported = load_exported(tmp_path / "out", format=fmt)
        assert exported.format == fmt
        assert np.abs(exported(images) - want).max() < 1e-5, fmt


def test_export_folder_with_a_modified_model_is_refused(exported, tmp_path):
    from featx.export import load_exported

    out = tmp_path / "served"
    shutil.copytree(exported[0], out)
    with open(out / "model.keras", "ab") as fh:
        fh.write(b"x")
    r = CliRunner().invoke(cli, ["predict", str(out), str(out / "labels.txt")])
    assert r.exit_code == 1 and "model.keras was modified after export" in r.output
    assert load_exported(out, format="onnx").format == "onnx"  # the other files are intact
    (out / "export.json").unlink()
    r = CliRunner().invoke(cli, ["predict", str(out), str(out / "labels.txt")])
    assert r.exit_code == 1 and "is a folder without export.json" in r.output and "Traceback" not in r.output


def test_a_kerashub_backbone_exports_to_onnx(tmp_path):
    """A tiny DINOv2 preset: its converter's scale/offset become a layer, and its exact GELU
    (TensorFlow's Erfc, no ONNX op) is converted as 1 - Erf."""
    import featx
    from featx.export import export_model
    from tests._hub_helpers import TINY_HUB_SIZE, save_tiny_preset

    preset = save_tiny_preset(tmp_path / "dinov2", "dinov2")
    rng = np.random.default_rng(5)
    for c, name in enumerate(["blue", "red"]):
        for i in range(6):
            save(color_image(rng, w=TINY_HUB_SIZE, h=TINY_HUB_SIZE, tint=2 * c), tmp_path / "imgs" / name / f"{i}.png")
    featx.extract_features(str(tmp_path / "imgs"), str(tmp_path / "f.h5"), backbone=f"hub:{preset}", progress=False)
    featx.fit_features(str(tmp_path / "f.h5"), str(tmp_path / "clf.pkl"), test_size=4, jobs=1)
    res = export_model(tmp_path / "clf.pkl", tmp_path / "out", formats="onnx", progress=False,
                       check_images=[tmp_path / "imgs"])
    assert res.record["source"]["backbone"]["preprocessing"] == "imagenet_mean_std"
    assert res.parity["onnx"]["passed"] and res.parity["onnx"]["max_abs_diff"] < 1e-5
    assert res.parity["onnx"]["top1_agreement"] == 1.0

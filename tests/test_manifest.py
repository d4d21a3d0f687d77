"""Classifier integrity (featx.fit.manifest) and feature settings checked end to end, through the CLI.

Edited manifests, a pickle served as skops, features made with other settings, NaN features, and the
other one-line messages of issue 10: split advice, a corrupt .keras file.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from featx.cli import cli
from featx.errors import FeatxError
from featx.fit import export_classifier, fit_classifier, load_classifier, side_paths
from tests._transfer_helpers import separable_features, write_features

NAMES = ["ant", "bee", "cat", "dog"]
BB32 = {"name": "resnet50", "weights": "imagenet", "image_size": 32, "preprocessing": "caffe", "dim": 16}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "unexpected error" not in result.output, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data():
    return separable_features(n_per_class=20, classes=4, dim=16, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return fit_classifier(X, y, label_names=NAMES, test_size=0.25, seed=0, cv=2, jobs=1, grid=[1.0])


@pytest.fixture
def exported(fitted, tmp_path, data):
    paths = export_classifier(fitted, tmp_path / "clf.pkl", backbone=dict(BB32))
    X, y = data
    feats = write_features(tmp_path / "feats32.h5", X, y, NAMES, backbone=dict(BB32))
    return paths, feats


def _edit_manifest(paths, **changes):
    m = json.loads(paths["manifest"].read_text())
    m.update(changes)
    paths["manifest"].write_text(json.dumps(m))


def test_clean_classifier_scores_and_carries_its_names(exported):
    paths, feats = exported
    est, manifest = load_classifier(paths["classifier"])
    assert est.featx_label_names_ == NAMES and est.featx_feature_settings_ == BB32 and est.featx_feature_dim_ == 16
    r = run("evaluate", paths["classifier"], "--data", feats, "--no-progress")
    assert r.exit_code == 0, r.output


def test_renamed_labels_in_the_manifest_are_refused(exported):
    paths, feats = exported
    _edit_manifest(paths, label_names=["bee", "ant", "cat", "dog"])  # would silently swap two labels
    one_line_error(run("evaluate", paths["classifier"], "--data", feats), "clf.manifest.json was edited",
                   "label_names")


def test_too_few_label_names_give_one_line(exported):
    paths, feats = exported
    _edit_manifest(paths, label_names=NAMES[:2])
    one_line_error(run("evaluate", paths["classifier"], "--data", feats), "clf.manifest.json")


def test_edited_backbone_settings_in_the_manifest_are_refused(exported):
    paths, _ = exported
    _edit_manifest(paths, backbone={**BB32, "image_size": 64})
    with pytest.raises(FeatxError, match=r"was edited: its backbone settings differ .*image_size 64 != 32"):
        load_classifier(paths["classifier"])
    _edit_manifest(paths, backbone=None)
    with pytest.raises(FeatxError, match=r"was edited: its backbone settings differ .*name None != 'resnet50'"):
        load_classifier(paths["classifier"])


def test_classifier_fit_without_settings_refuses_settings_added_later(fitted, tmp_path):
    paths = export_classifier(fitted, tmp_path / "nobb.pkl", backbone=None)
    load_classifier(paths["classifier"])
    _edit_manifest(paths, backbone=dict(BB32))  # predict would build this backbone
    with pytest.raises(FeatxError, match="was edited: its backbone settings differ"):
        load_classifier(paths["classifier"])


class _Marker:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


@pytest.mark.parametrize("claimed", ["pickle", "skops"])
def test_pickle_served_as_skops_is_never_unpickled(fitted, tmp_path, claimed):
    paths = export_classifier(fitted, tmp_path / "clf.skops", format="skops", backbone=dict(BB32))
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Marker(marker), protocol=pickle.HIGHEST_PROTOCOL)
    pickle.loads(evil)  # the payload works ...
    assert marker.exists()
    marker.unlink()
    paths["classifier"].write_bytes(evil)  # ... served as clf.skops with a manifest that vouches for it
    _edit_manifest(paths, sha256=hashlib.sha256(evil).hexdigest(), format=claimed)
    with pytest.raises(FeatxError, match=r"clf.skops is a pickle but .*; refusing to unpickle it"):
        load_classifier(paths["classifier"])
    assert not marker.exists()
    # the same bytes named clf.pkl, with a manifest claiming skops: refused as well
    pkl = tmp_path / "other.pkl"
    pkl.write_bytes(evil)
    side_paths(pkl)[0].write_text(json.dumps({"sha256": hashlib.sha256(evil).hexdigest(), "format": "skops",
                                              "label_names": NAMES}))
    with pytest.raises(FeatxError, match="its manifest says 'skops'"):
        load_classifier(pkl)
    assert not marker.exists()


def test_skops_bytes_are_read_as_skops_whatever_the_manifest_says(fitted, tmp_path):
    paths = export_classifier(fitted, tmp_path / "clf.skops", format="skops", backbone=dict(BB32))
    _edit_manifest(paths, format="pickle")
    est, _ = load_classifier(paths["classifier"])  # a zip is never handed to pickle
    assert est.featx_label_names_ == NAMES
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"GIF89a not a classifier")
    side_paths(junk)[0].write_text(json.dumps({"sha256": hashlib.sha256(junk.read_bytes()).hexdigest(),
                                               "format": "pickle", "label_names": NAMES}))
    with pytest.raises(FeatxError, match="neither a pickle nor a skops file"):
        load_classifier(junk)


def test_features_of_another_image_size_are_refused(exported, tmp_path, data):
    """A 32 px classifier on 64 px features of the same backbone: refused in evaluate and in fit --test."""
    paths, feats32 = exported
    X, y = data
    feats64 = write_features(tmp_path / "feats64.h5", X, y, NAMES, backbone={**BB32, "image_size": 64})
    line = one_line_error(run("evaluate", paths["classifier"], "--data", feats64), "feats64.h5",
                          "image_size 64 where the classifier has 32", "--image-size 32")
    assert "--backbone resnet50" in line
    pre = write_features(tmp_path / "torch.h5", X, y, NAMES, backbone={**BB32, "preprocessing": "torch"})
    one_line_error(run("evaluate", paths["classifier"], "--data", pre), "preprocessing torch where the classifier has caffe")
    one_line_error(run("fit", feats32, "--test", feats64, "-o", tmp_path / "c2.pkl", "--grid", "1", "--cv", 2, "-j", 1),
                   "feats64.h5", f"image_size 64 where {feats32} has 32")
    assert not (tmp_path / "c2.pkl").exists()


def test_features_of_another_kerashub_preset_version_are_refused(tmp_path, data):
    """Two versions of one KerasHub preset share name and weights: the resolved handle tells them apart."""
    X, y = data
    hub = {"name": "hub:dinov2_small", "weights": "dinov2_small", "image_size": 32, "preprocessing": "none", "dim": 16}
    v1 = write_features(tmp_path / "v1.h5", X, y, NAMES, backbone={**hub, "preset_handle": "kaggle://keras/dinov2/1"})
    v2 = write_features(tmp_path / "v2.h5", X, y, NAMES, backbone={**hub, "preset_handle": "kaggle://keras/dinov2/2"})
    one_line_error(run("fit", v1, "--test", v2, "-o", tmp_path / "c.pkl", "--grid", "1", "--cv", 2, "-j", 1),
                   "v2.h5", "preset_handle kaggle://keras/dinov2/2 where", "kaggle://keras/dinov2/1")
    assert not (tmp_path / "c.pkl").exists()


def test_nan_features_give_one_line_naming_the_file(exported, tmp_path, data):
    paths, _ = exported
    X, y = data
    X = X.copy()
    X[5, 3] = np.nan
    X[9, 0] = np.inf
    nan = write_features(tmp_path / "nan.h5", X, y, NAMES, backbone=dict(BB32))
    one_line_error(run("evaluate", paths["classifier"], "--data", nan), str(nan), "NaN and infinite",
                   "row 5 of 80")


def test_old_classifier_without_stamp_still_loads(fitted, tmp_path):
    """Classifiers exported before the stamp (featx 0.1) load with the label-count check only."""
    est = pickle.loads(pickle.dumps(fitted.estimator))
    for attr in ("featx_label_names_", "featx_feature_settings_", "featx_feature_dim_"):
        est.__dict__.pop(attr, None)
    blob = pickle.dumps(est)
    p = tmp_path / "old.pkl"
    p.write_bytes(blob)
    manifest = {"sha256": hashlib.sha256(blob).hexdigest(), "format": "pickle", "label_names": NAMES}
    side_paths(p)[0].write_text(json.dumps(manifest))
    loaded, m = load_classifier(p)
    assert m["label_names"] == NAMES and not hasattr(loaded, "featx_label_names_")
    side_paths(p)[0].write_text(json.dumps({**manifest, "label_names": NAMES[:3]}))
    with pytest.raises(FeatxError, match="lists 3 label names but the classifier predicts 4 classes"):
        load_classifier(p)


def test_manifest_module_is_tensorflow_free():
    import subprocess
    import sys

    code = "import featx.fit.manifest, featx.fit, sys; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_split_advice_points_the_right_way(tmp_path, rng):
    """80 images in 10 classes: --val/--test 0.1 hold out 8 < 10 classes, so they must grow."""
    from featx.data.splits import stratified_split
    from tests.conftest import color_image, save

    labels = np.repeat(np.arange(10), 8)
    with pytest.raises(FeatxError) as e:
        stratified_split(labels, val=0.1, test=0.1)
    msg = str(e.value)
    assert "80 images in 10 classes into --val 8 --test 8" in msg and "use larger ones: --val 10 --test 10" in msg
    assert "smaller" not in msg
    stratified_split(labels, val=10, test=10)  # the advice works
    with pytest.raises(FeatxError, match=r"hold out one split only: --val 0 --test 10 \(or --val 10 --test 0\)"):
        stratified_split(np.repeat(np.arange(10), 2), val=0.1, test=0.1)
    stratified_split(np.repeat(np.arange(10), 2), val=0, test=10)
    with pytest.raises(FeatxError, match="smallest class has 1 image .* add images to the small classes"):
        stratified_split(np.r_[np.repeat(np.arange(3), 8), [3]], val=0.1, test=0.1)
    for c in range(10):  # the same through featx build: one line, before any decoding
        for i in range(8):
            save(color_image(rng, 8, 8, tint=c), tmp_path / "src" / f"c{c}" / f"{i}.png")
    one_line_error(run("build", tmp_path / "src", "-o", tmp_path / "out", "--size", 8), "--val 10 --test 10")


def test_corrupt_keras_file_is_named_as_such(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"PK not really a zip, a truncated download")
    feats = write_features(tmp_path / "f.h5", *separable_features(5, 2, 4), ["a", "b"])
    line = one_line_error(run("evaluate", bad, "--data", feats), "model.keras is not a readable Keras model")
    assert "File not found" not in line
    from featx.runtime.keras_files import check_keras_file

    (tmp_path / "empty.keras").write_bytes(b"")
    with pytest.raises(FeatxError, match="not a readable Keras model: .* zip archive and this one is not \\(empty\\)"):
        check_keras_file(tmp_path / "empty.keras")


def test_a_classifier_naming_code_that_moved_is_refused_in_one_line(tmp_path, data):
    """A featx 0.2 pickle of the global scaler names ``featx.scaling.GlobalScaler`` (moved in 0.3)."""
    X, y = data
    fit = fit_classifier(X, y, label_names=NAMES, test_size=0.25, seed=0, cv=2, jobs=1, grid=[1.0],
                         scalers=["global"])
    paths = export_classifier(fit, tmp_path / "clf.pkl", backbone=dict(BB32))
    estimator = pickle.loads(paths["classifier"].read_bytes())
    blob = pickle.dumps(estimator, protocol=2)  # protocol 2 names classes as text: "module\nname\n"
    assert b"featx.fit.scaling\nGlobalScaler" in blob
    old = blob.replace(b"featx.fit.scaling\nGlobalScaler", b"featx.scaling\nGlobalScaler")  # 0.2's path
    paths["classifier"].write_bytes(old)
    manifest = json.loads(paths["manifest"].read_text())
    manifest["sha256"], manifest["size_bytes"], manifest["versions"]["featx"] = hashlib.sha256(old).hexdigest(), len(old), "0.2.0"
    paths["manifest"].write_text(json.dumps(manifest))
    with pytest.raises(FeatxError, match=r"written by featx 0\.2\.0 and names code .*featx\.scaling.*refit it"):
        load_classifier(paths["classifier"])


class _Killed(BaseException):
    """Stands for SIGKILL: raised before the rename it interrupts; no featx handler catches it."""


def _kill_at(monkeypatch, step: int | None) -> list:
    """Make the ``step``-th ``os.replace`` (0-based) of what follows die before it happens."""
    import os

    real, done = os.replace, []

    def replace(a, b):
        if step is not None and len(done) == step:
            monkeypatch.setattr(os, "replace", real)
            raise _Killed(f"killed before renaming {Path(a).name} to {Path(b).name}")
        done.append(Path(b).name)
        return real(a, b)

    monkeypatch.setattr(os, "replace", replace)
    return done


def _consistent_or_refused(out: Path, allowed: set[str]) -> None:
    """The classifier at ``out`` loads as one of the ``allowed`` sha256s, or is refused in one line as unfinished."""
    from featx.outputs import check_overwritable

    for p in (out, *side_paths(out)):
        check_overwritable(p)  # never 'not a file featx wrote': a killed export never blocks a rerun
    try:
        _, manifest = load_classifier(out)
    except FeatxError as e:
        assert ("unfinished export" in str(e) or "does not exist" in str(e)) and "\n" not in str(e), str(e)
        return
    assert manifest["sha256"] in allowed and hashlib.sha256(out.read_bytes()).hexdigest() == manifest["sha256"]


def test_export_is_one_crash_safe_unit_with_a_kill_at_every_step(fitted, data, tmp_path, monkeypatch):
    X, y = data
    other = fit_classifier(X, y, label_names=NAMES, test_size=0.25, seed=0, cv=2, jobs=1, grid=[0.01])
    steps = _kill_at(monkeypatch, None)
    export_classifier(fitted, tmp_path / "probe" / "clf.pkl")
    assert steps == ["clf.pkl.partial", "clf.metrics.json.partial", "clf.manifest.json.partial",
                     "clf.pkl", "clf.metrics.json", "clf.manifest.json"]  # the manifest, the commit, last
    for step in range(len(steps)):
        # a first export killed at `step`: the same call, rerun without --overwrite, finishes it
        out = tmp_path / f"new{step}" / "clf.pkl"
        _kill_at(monkeypatch, step)
        with pytest.raises(_Killed):
            export_classifier(fitted, out)
        _consistent_or_refused(out, allowed=set())
        _kill_at(monkeypatch, None)
        export_classifier(fitted, out)
        est, manifest = load_classifier(out)
        assert sorted(p.name for p in out.parent.iterdir()) == ["clf.manifest.json", "clf.metrics.json", "clf.pkl"]

        # replacing a finished unit, killed at `step`: the old unit or an unfinished new one, then the rerun
        old_sha = manifest["sha256"]
        _kill_at(monkeypatch, step)
        with pytest.raises(_Killed):
            export_classifier(other, out, overwrite=True)
        _kill_at(monkeypatch, None)
        _consistent_or_refused(out, allowed={old_sha})
        export_classifier(other, out, overwrite=True)
        est, manifest = load_classifier(out)
        assert est[-1].C == 0.01 and manifest["sha256"] != old_sha


def test_cross_check_refuses_label_names_that_are_not_a_list_of_strings_and_names_both_lists(tmp_path):
    """Survivors of the manifest mutation run: ``or`` -> ``and`` in the names check, the shortened
    name lists of the "was edited" message (six names in full, more cut after five with the count)."""
    from types import SimpleNamespace

    from featx.fit.manifest import cross_check

    clf = tmp_path / "clf.pkl"
    est = SimpleNamespace(classes_=np.arange(3))
    assert cross_check(clf, est, {"label_names": ["a", "b", "c"]})["label_names"] == ["a", "b", "c"]
    for bad in ("abc", {"a": 0}, None, ["a", 1, "c"], [b"a", "b", "c"]):
        with pytest.raises(FeatxError, match=r"clf\.manifest\.json has no list of label_names; re-export"):
            cross_check(clf, est, {"label_names": bad})
    with pytest.raises(FeatxError, match=r"lists 2 label names but the classifier predicts 3 classes"):
        cross_check(clf, est, {"label_names": ["a", "b"]})
    # classes 0 and 2 only (class 1 had no training rows): label 2 still needs a name
    with pytest.raises(FeatxError, match=r"lists 2 label names but the classifier predicts 3 classes"):
        cross_check(clf, SimpleNamespace(classes_=np.array([0, 2])), {"label_names": ["a", "b"]})
    many = [f"n{i}" for i in range(8)]
    own = SimpleNamespace(classes_=np.arange(8), featx_label_names_=many)
    edited = [*many[:7], "x"]
    with pytest.raises(FeatxError) as ei:
        cross_check(clf, own, {"label_names": edited})
    assert str(ei.value) == (
        "clf.manifest.json was edited: its label_names ['n0', 'n1', 'n2', 'n3', 'n4', ... (8 names)] differ from the "
        "classifier's own ['n0', 'n1', 'n2', 'n3', 'n4', ... (8 names)]; restore the manifest or re-export with featx fit"
    ).replace("clf.manifest.json", str(tmp_path / "clf.manifest.json"))
    six = SimpleNamespace(classes_=np.arange(6), featx_label_names_=list("abcdef"))
    with pytest.raises(FeatxError, match=re.escape("label_names ['a', 'b', 'c', 'd', 'e', 'x'] differ from the "
                                                   "classifier's own ['a', 'b', 'c', 'd', 'e', 'f']")):
        cross_check(clf, six, {"label_names": list("abcdex")})


def test_a_stale_manifest_partial_beside_a_committed_classifier_is_not_an_unfinished_export(fitted, tmp_path):
    """Survivors of export.py's ``_committed``: a classifier its final manifest vouches for stays a
    finished export (fit refuses to replace it without --overwrite) even with a manifest partial
    beside it; one only its partial manifest vouches for (killed before the manifest's rename:
    the final one is an older export's, or missing) is unfinished."""
    from featx.fit.export import unfinished_export

    out = tmp_path / "clf.pkl"
    export_classifier(fitted, out, backbone=dict(BB32))
    manifest = side_paths(out)[0]
    partial = manifest.with_name(manifest.name + ".partial")
    partial.write_text("{}")
    assert not unfinished_export(out)
    partial.write_text(manifest.read_text())  # the partial manifest vouches for it too
    assert not unfinished_export(out)
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "sha256": "0" * 64}))  # an older export's manifest
    assert unfinished_export(out)
    manifest.write_text("[]")  # not a manifest at all
    assert unfinished_export(out)
    manifest.unlink()
    assert unfinished_export(out)

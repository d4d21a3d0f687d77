"""``hub:PRESET`` backbones through KerasHub, without network.

Each family (DINOv2, DINOv3, CLIP, SigLIP) is a tiny random-weight instance of its KerasHub backbone
class saved as a preset folder (``tests/_hub_helpers.py``): ``hub:FOLDER`` takes the same
``Backbone.from_preset`` + ``ImageConverter.from_preset`` path as a downloaded preset. What this does
not cover: downloading a real preset (no network here) and the real presets' weights.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("keras_hub")

from featx.backbones import build_backbone  # noqa: E402
from featx.cli import cli  # noqa: E402
from featx.errors import FeatxError, WeightsUnavailableError  # noqa: E402
from tests._hub_helpers import FAMILIES, TINY_HUB_SIZE, reference_pooled, save_tiny_preset  # noqa: E402
from tests.conftest import color_image, save  # noqa: E402

POOLING = {"dinov2": "class_token", "dinov3": "class_token", "clip": "image_embedding", "siglip": "image_embedding"}
DIM = {"dinov2": 16, "dinov3": 16, "clip": 12, "siglip": 16}  # hidden_dim, or CLIP's projection_dim
PREPROCESSING = {"dinov2": "imagenet_mean_std", "dinov3": "imagenet_mean_std", "clip": "clip_mean_std", "siglip": "tf"}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    return {f: save_tiny_preset(root / f, f) for f in FAMILIES}


def _images(n=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, TINY_HUB_SIZE, TINY_HUB_SIZE, 3), dtype=np.uint8)


def test_random_init_is_seeded_and_sizes_follow_the_family(presets):
    a = build_backbone(f"hub:{presets['dinov2']}", weights="none")
    b = build_backbone(f"hub:{presets['dinov2']}", weights=None)
    x = _images(2)
    np.testing.assert_array_equal(a(x), b(x))
    assert a.settings["weights"] == "none" and a.settings["seed"] == 0 and "model_sha256" not in a.settings
    assert not np.allclose(a(x), build_backbone(f"hub:{presets['dinov2']}")(x))

    big = build_backbone(f"hub:{presets['dinov2']}", image_size=48)  # DINO: position embeddings interpolated
    assert big.image_size == 48 and big(_images(2)).shape == (2, 16)
    with pytest.raises(FeatxError, match="multiple of its patch size 8"):
        build_backbone(f"hub:{presets['dinov2']}", image_size=44)
    with pytest.raises(FeatxError, match=r"takes 32x32 images \(fixed position embeddings\)"):
        build_backbone(f"hub:{presets['clip']}", image_size=48)
    with pytest.raises(FeatxError, match="takes its weights from the preset"):
        build_backbone(f"hub:{presets['clip']}", weights="/some/file.h5")


def test_offline_preset_gives_one_line_naming_cache_and_preset(tmp_path, monkeypatch):
    import kagglehub
    import requests

    def no_network(*a, **k):
        try:
            raise socket.gaierror(-2, "Name or service not known")
        except socket.gaierror as e:
            raise requests.exceptions.ConnectionError("Failed to resolve 'api.kaggle.com'") from e

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kh-cache"))
    monkeypatch.setattr(kagglehub, "model_download", no_network)
    with pytest.raises(WeightsUnavailableError) as e:
        build_backbone("hub:dinov2_small")
    msg = str(e.value)
    assert msg.startswith("KerasHub preset dinov2_small is not in the KerasHub cache")
    assert str(tmp_path / "kh-cache") in msg and "\n" not in msg
    with pytest.raises(FeatxError, match="unknown KerasHub preset 'no_such_preset_xyz'"):
        build_backbone("hub:no_such_preset_xyz")

    (tmp_path / "src" / "a").mkdir(parents=True)
    save(color_image(np.random.default_rng(0)), tmp_path / "src" / "a" / "0.png")
    r = CliRunner().invoke(cli, ["extract", str(tmp_path / "src"), "-o", str(tmp_path / "f.h5"), "-b", "hub:dinov2_small"])
    assert r.exit_code == 1 and r.output.strip().splitlines() == [f"Error: {msg}"]
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_extract_fit_predict_through_each_family(presets, family, tmp_path):
    """extract -> fit -> predict with hub:FOLDER: the file records the family's pooling and the
    converter's normalization and holds KerasHub's own pooled vectors (computed without featx), and
    predict (which rebuilds the backbone from the classifier's manifest) scores exactly like the
    classifier on the stored features."""
    from featx.fit import full_proba, load_classifier
    from featx.predict import predict_images
    from featx.store import feature_settings, open_store

    rng = np.random.default_rng(5)
    src = tmp_path / "imgs"
    for c, name in enumerate(["blue", "red"]):
        for i in range(6):
            save(color_image(rng, w=TINY_HUB_SIZE, h=TINY_HUB_SIZE, tint=2 * c), src / name / f"{name}_{i}.png")
    runner = CliRunner()
    feats = tmp_path / "f.h5"
    r = runner.invoke(cli, ["extract", str(src), "-o", str(feats), "-b", f"hub:{presets[family]}", "--no-progress"])
    assert r.exit_code == 0, r.output
    with open_store(feats, "features") as st:
        X, _ = st.load()
        paths = st.paths
        settings = feature_settings(st.attrs)
    assert X.shape == (12, DIM[family]) and X.dtype == np.float32 and np.isfinite(X).all()
    assert settings["name"] == f"hub:{presets[family].resolve()}" and settings["weights"] == "preset"
    assert (settings["dim"], settings["image_size"]) == (DIM[family], TINY_HUB_SIZE)
    assert (settings["pooling"], settings["preprocessing"]) == (POOLING[family], PREPROCESSING[family])
    assert len(settings["model_sha256"]) == 64
    from PIL import Image

    pixels = np.stack([np.asarray(Image.open(src / p).convert("RGB")) for p in paths])
    np.testing.assert_allclose(X, reference_pooled(presets[family], family, pixels), rtol=1e-4, atol=1e-5)

    clf = tmp_path / "clf.pkl"
    r = runner.invoke(cli, ["fit", str(feats), "-o", str(clf), "--test-size", "4", "--jobs", "1", "--cv", "2"])
    assert r.exit_code == 0, r.output
    rows, manifest = predict_images(clf, [src / paths[0], src / paths[-1]], top_k=2)
    assert manifest["backbone"]["name"] == f"hub:{Path(presets[family]).resolve()}"
    est, _ = load_classifier(clf)
    want = full_proba(est, X[[0, -1]], 2)
    for row, p in zip(rows, want):
        assert row.error is None
        assert row.probability == pytest.approx(float(p.max()), abs=1e-5)

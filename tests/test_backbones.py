"""Backbone registry, weights (none / local file / offline ImageNet) and ``keras:PATH[:LAYER]``."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest

from featx.backbones import (
    backbone_from_settings,
    build_backbone,
    get_backbone_info,
    list_backbones,
)
from featx.errors import FeatxError, WeightsUnavailableError
from tests._transfer_helpers import tiny_model

DOCUMENTED = {  # name: (dim, default input size)
    "resnet50": (2048, 224),
    "vgg16": (512, 224),
    "inceptionv3": (2048, 299),
    "mobilenetv2": (1280, 224),
    "efficientnetb0": (1280, 224),
    "convnext_tiny": (768, 224),
    "convnext_small": (768, 224),
    "convnext_base": (1024, 224),
    "efficientnetv2b0": (1280, 224),
    "efficientnetv2s": (1280, 384),
    "efficientnetv2m": (1280, 480),
}
#: Built at 32-40 px in the tests below. The larger ConvNeXt/EfficientNetV2 variants take 6-13 s each
#: to build on 2 CPU cores and share their code path (builder, pooling, preprocessing) with the
#: smallest of their family: their registry metadata is checked against Keras' own tables instead.
#: MobileNetV2 is built (and checked the same way) by test_random_weights_are_seeded_and_local_weights_load.
BUILT_IN_TESTS = ["resnet50", "vgg16", "inceptionv3", "efficientnetb0", "convnext_tiny", "efficientnetv2b0"]


def _images(n=2, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_registry_lists_documented_backbones_resnet50_first():
    infos = list_backbones()
    assert [i.name for i in infos][0] == "resnet50"
    assert {i.name: (i.dim, i.default_size) for i in infos} == DOCUMENTED
    for info in infos:
        assert info.description and info.preprocessing in ("caffe", "tf", "none")
    with pytest.raises(FeatxError, match="unknown backbone 'resnet51'.*keras:PATH"):
        get_backbone_info("resnet51")


def _check_n_by_d(bb, name: str, size: int) -> None:
    info = get_backbone_info(name)
    feats = bb(_images(3, size=size + 8))  # another size: resized on the fly
    assert feats.shape == (3, info.dim) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert bb.settings == {
        "name": name, "weights": "none", "image_size": size, "preprocessing": info.preprocessing,
        "dim": info.dim, "seed": 0,
    }


@pytest.mark.parametrize("name", BUILT_IN_TESTS)
def test_every_backbone_builds_with_random_weights_and_gives_n_by_d(name):
    size = max(get_backbone_info(name).min_size, 32)
    _check_n_by_d(build_backbone(name, weights=None, image_size=size), name, size)


def test_unbuilt_variants_match_keras_own_tables():
    """convnext_small/base and efficientnetv2s/m (not built here: see BUILT_IN_TESTS) against the
    numbers Keras itself uses: ConvNeXt's MODEL_CONFIGS and EfficientNetV2's constructor defaults."""
    import inspect
    import re

    from keras.src.applications import convnext, efficientnet_v2

    for name, variant in [("convnext_tiny", "tiny"), ("convnext_small", "small"), ("convnext_base", "base")]:
        info, cfg = get_backbone_info(name), convnext.MODEL_CONFIGS[variant]
        assert (info.dim, info.default_size) == (cfg["projection_dims"][-1], cfg["default_size"]), name
    for name, fn in [("efficientnetv2b0", "EfficientNetV2B0"), ("efficientnetv2s", "EfficientNetV2S"),
                     ("efficientnetv2m", "EfficientNetV2M")]:
        src = inspect.getsource(getattr(efficientnet_v2, fn))
        info = get_backbone_info(name)
        assert int(re.search(r"default_size=(\d+)", src).group(1)) == info.default_size, name
        assert re.search(r"width_coefficient=1\.0", src) and info.dim == 1280, name  # top conv: 1280 filters
    for name in ("convnext_tiny", "convnext_small", "convnext_base", "efficientnetv2b0", "efficientnetv2s", "efficientnetv2m"):
        info = get_backbone_info(name)
        assert info.preprocessing == "none" and info.min_size == 32  # scaling lives inside the Keras 3 model


def test_random_weights_are_seeded_and_local_weights_load(tmp_path):
    a = build_backbone("mobilenetv2", weights="none", image_size=32)
    b = build_backbone("mobilenetv2", weights="none", image_size=32)
    _check_n_by_d(b, "mobilenetv2", 32)  # as every backbone above
    x = _images(2, size=32)
    np.testing.assert_array_equal(a(x), b(x))  # same spec, same features: smoke runs can resume

    # a weights file that differs from the seeded init: features must follow the file
    rng = np.random.default_rng(1)
    a.model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in a.model.get_weights()])
    path = tmp_path / "mnv2.weights.h5"
    a.model.save_weights(path)
    c = build_backbone("mobilenetv2", weights=str(path), image_size=32)
    np.testing.assert_allclose(c(x), a(x), rtol=1e-5, atol=1e-6)
    assert not np.allclose(c(x), b(x))
    assert c.settings["weights"] == str(path.resolve()) and len(c.settings["weights_sha256"]) == 64


def test_bad_weights_and_sizes_are_one_line_errors(tmp_path):
    with pytest.raises(FeatxError, match="not 'imagenet', 'none' or an existing file"):
        build_backbone("vgg16", weights=str(tmp_path / "missing.h5"), image_size=32)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(FeatxError, match="cannot load weights .*junk.h5 into vgg16"):
        build_backbone("vgg16", weights=str(junk), image_size=32)
    with pytest.raises(FeatxError, match="inceptionv3 needs an image size of at least 75px"):
        build_backbone("inceptionv3", weights=None, image_size=32)


def test_offline_imagenet_gives_one_clear_line(tmp_path, monkeypatch):
    """No network and an empty Keras cache: WeightsUnavailableError, then one CLI line, no traceback."""
    from click.testing import CliRunner
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def no_network(*a, **k):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    with pytest.raises(WeightsUnavailableError) as e:
        build_backbone("resnet50", weights="imagenet", image_size=32)
    msg = str(e.value)
    assert msg.startswith("ImageNet weights for resnet50 are not in the Keras cache")
    assert str(tmp_path / "keras" / "models") in msg and "--weights /path/to/weights.h5" in msg
    assert "--weights none" in msg and "\n" not in msg

    from PIL import Image

    from featx.cli import cli

    (tmp_path / "src" / "a").mkdir(parents=True)
    Image.fromarray(_images(1, size=20)[0]).save(tmp_path / "src" / "a" / "0.png")
    result = CliRunner().invoke(cli, ["extract", str(tmp_path / "src"), "-o", str(tmp_path / "f.h5"),
                                      "--image-size", "32"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {msg}"]
    assert not (tmp_path / "f.h5").exists()


def test_saved_keras_model_cut_at_default_and_named_layer(tmp_path):
    from tests._transfer_helpers import reference_features

    path = tiny_model(tmp_path / "run" / "model.keras")
    x = _images(3, size=16)
    bb = build_backbone(f"keras:{path}")  # default: input of the final Dense = "fc"
    assert (bb.dim, bb.image_size) == (6, 16)
    assert bb.settings["name"] == f"keras:{path.resolve()}:fc" and bb.settings["preprocessing"] == "none"
    np.testing.assert_allclose(bb(x), reference_features(path, "fc", x), rtol=1e-5, atol=1e-6)

    conv = build_backbone(f"keras:{path}:conv")  # a 4-D output is average-pooled
    assert conv.dim == 4
    np.testing.assert_allclose(conv(x), reference_features(path, "conv", x).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)

    again = backbone_from_settings(bb.settings)  # what featx predict does with a manifest
    np.testing.assert_allclose(again(x), bb(x), rtol=1e-6)

    with pytest.raises(FeatxError, match="has no layer 'nope'"):
        build_backbone(f"keras:{path}:nope")
    with pytest.raises(FeatxError, match="takes 16x16 images"):
        build_backbone(f"keras:{path}", image_size=32)
    with pytest.raises(FeatxError, match="does not exist"):
        build_backbone(f"keras:{tmp_path / 'none.keras'}")

    tiny_model(path, classes=4)  # the file changes after features were made from it
    with pytest.raises(FeatxError, match="changed since the features were extracted"):
        backbone_from_settings(bb.settings)

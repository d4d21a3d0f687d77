"""The pieces of the exported network: preprocessing layers, the folded head, float32 copies, the bytes decoder."""

from __future__ import annotations

import numpy as np
import pytest

from featx.errors import FeatxError


def _through(layers, x):
    import keras

    inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
    y = inputs
    for layer in layers:
        y = layer(y)
    return np.asarray(keras.Model(inputs, y)(x))


@pytest.mark.parametrize("name, module", [("caffe", "resnet50"), ("tf", "mobilenet_v2"), ("none", None)])
def test_network_front_end_equals_keras_applications(name, module):
    """uint8 in -> the backbone's preprocessing -> model: here a mean-pool 'backbone' and an identity head."""
    import importlib

    import keras

    from featx.backbones import Backbone
    from featx.export.network import classifier_network

    pool = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.GlobalAveragePooling2D()])
    bb = Backbone(pool, None, 3, 6, {"name": "pool", "preprocessing": name})
    net = classifier_network(bb, np.eye(3, dtype=np.float32) / 50, np.zeros(3, np.float32), "softmax")
    x = np.random.default_rng(0).integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    pre = x.astype(np.float32)
    if module:
        pre = importlib.import_module(f"keras.applications.{module}").preprocess_input(pre)
    z = pre.mean(axis=(1, 2)) / 50
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    got = np.asarray(net(x))
    assert net.input.dtype == "uint8" and got.shape == (4, 3)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_scale_offset_and_probed_affine_preprocessing():
    from keras.applications import imagenet_utils

    from featx.export.network import preprocessing_layers

    x = np.random.default_rng(1).integers(0, 256, (2, 4, 6, 3), dtype=np.uint8)
    f = x.astype(np.float32)
    # a KerasHub converter (settings record scale and offset per channel)
    scale, offset = [1 / 255 / 0.229, 1 / 255 / 0.224, 1 / 255 / 0.225], [-2.1, -2.0, -1.8]
    got = _through(preprocessing_layers("imagenet_mean_std", {"scale": scale, "offset": offset}), f)
    np.testing.assert_allclose(got, f * np.float32(scale) + np.float32(offset), atol=1e-5)
    # any other per-pixel affine function (here keras' torch mode) is measured and reproduced
    torch_mode = lambda a: imagenet_utils.preprocess_input(a, mode="torch")  # noqa: E731
    got = _through(preprocessing_layers("torch", {}, torch_mode), f)
    np.testing.assert_allclose(got, torch_mode(f.copy()), atol=1e-5)
    with pytest.raises(FeatxError, match="not an affine map"):
        preprocessing_layers("square", {}, lambda a: a * a)
    with pytest.raises(FeatxError, match="cannot express the preprocessing 'odd'"):
        preprocessing_layers("odd")


def test_one_vs_rest_head_layers_equal_sgd_predict_proba():
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from featx.export.network import classifier_layers
    from featx.fit import dense_head, head_activation
    from tests._transfer_helpers import separable_features

    X, y = separable_features(n_per_class=15, classes=3, dim=6, seed=2)
    est = Pipeline([("scale", StandardScaler()), ("lr", SGDClassifier(loss="log_loss", random_state=0))]).fit(X, y)
    kernel, bias = dense_head(est, 3, ovr="softmax")
    import keras

    inputs = keras.Input((6,))
    out = inputs
    for layer in classifier_layers(kernel, bias, head_activation(est)):
        out = layer(out)
    got = np.asarray(keras.Model(inputs, out)(X))
    assert np.abs(got - est.predict_proba(X)).max() < 1e-5


def test_float32_copy_of_a_mixed_precision_model():
    import keras

    from featx.export.source import float32_model

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(1)
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Dense(3, activation="softmax", dtype="float32", name="out")(x)
        mixed = keras.Model(inputs, out)
    finally:
        keras.config.set_dtype_policy(previous)
    assert mixed.get_layer("conv").compute_dtype == "float16"
    copy = float32_model(mixed)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(mixed(x)), atol=2e-2)  # float16 rounding only
    assert float32_model(copy) is copy  # already float32: itself


def test_bytes_decoder_follows_featx_decode(tmp_path):
    """JPEG at the input size decodes to featx's pixels exactly; resized JPEG/PNG within a level or so."""
    import tensorflow as tf
    from PIL import Image

    from featx.data.decode import load_image
    from featx.export.decode_graph import decode_function

    rng = np.random.default_rng(0)

    def smooth(h, w):
        low = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(low).resize((w, h), Image.BILINEAR))

    files = {"same.jpg": smooth(24, 24), "wide.jpg": smooth(40, 70), "big.jpg": smooth(200, 130), "b.png": smooth(30, 50)}
    rgba = np.concatenate([smooth(24, 24), rng.integers(0, 256, (24, 24, 1), dtype=np.uint8)], axis=2)
    for name, arr in {**files, "alpha.png": rgba}.items():
        Image.fromarray(arr).save(tmp_path / name, quality=90)
    for resize in ("aspect", "plain"):
        decode = tf.function(decode_function(24, resize))
        for name in [*files, "alpha.png"]:
            got = decode(tf.constant([(tmp_path / name).read_bytes()])).numpy()[0]
            want = load_image(tmp_path / name, 24, resize)
            diff = np.abs(got.astype(int) - want.astype(int))
            if name in ("same.jpg", "alpha.png"):
                assert diff.max() == 0, (resize, name)  # no resize: the same libjpeg decode, white compositing
            else:
                assert diff.max() <= 2 and diff.mean() < 0.5, (resize, name, diff.max(), diff.mean())

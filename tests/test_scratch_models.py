"""Tests for the scratch_models registry and architectures (fast, CPU only)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from featx.errors import FeatxError, RegistryError
from featx.registry import Registry
from scratch_models import create_model, get_model_info, list_models, register_model
from scratch_models import registry as registry_module

# Exact parameter counts from the book, at the canonical input size (an independent check of the
# registry's own info for the book's models; every other test is driven by the registry alone, so a
# model added in one file is tested with no edit here).
EXPECTED = {
    # name: (input_shape, classes, params)
    "alexnet": ((227, 227, 3), 2, 58_327_810),
    "minigooglenet": ((32, 32, 3), 10, 1_656_250),
    "deepergooglenet": ((64, 64, 3), 200, 3_667_976),
}
MODELS = list_models()


def _canonical_shape(name):
    info = get_model_info(name)
    return (info.input_size, info.input_size, info.channels)


def _small_shape(name):
    """A small-but-valid input for cheap builds."""
    info = get_model_info(name)
    side = min(info.input_size, max(info.min_input_size, 16))
    return (side, side, info.channels)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def canonical():
    """Canonical-size models, built once per test module."""
    cache: dict[str, keras.Model] = {}

    def get(name: str) -> keras.Model:
        if name not in cache:
            keras.utils.set_random_seed(0)
            cache[name] = create_model(name)
        return cache[name]

    return get


def _random_batch(shape, batch=2):
    return np.random.default_rng(0).random((batch, *shape), dtype=np.float32)


# --------------------------------------------------------------------- registry


def test_list_models_sorted_and_complete():
    assert MODELS == sorted(MODELS)
    assert set(EXPECTED) <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_model_info(name):
    info = get_model_info(name)
    assert info.name == name
    assert info.input_shape == _canonical_shape(name)
    assert info.default_classes >= 2
    if name in EXPECTED:
        shape, classes, params = EXPECTED[name]
        assert (info.input_shape, info.default_classes, info.params) == (shape, classes, params)
    assert info.description and "\n" not in info.description
    assert info.feature_layer
    assert 1 <= info.min_input_size <= info.input_size


def test_canonical_sizes():
    sizes = {name: get_model_info(name).input_size for name in MODELS}
    assert sizes == {"alexnet": 227, "minigooglenet": 32, "deepergooglenet": 64}


def test_unknown_model_error_lists_available():
    with pytest.raises(RegistryError) as excinfo:
        create_model("resnet9000")
    msg = str(excinfo.value)
    # other test modules may register test-only models: the message lists whatever is registered
    assert msg == (
        f"unknown scratch model 'resnet9000': choose one of {', '.join(list_models())} (see `featx models`)"
    )
    assert all(m in msg for m in MODELS)
    assert isinstance(excinfo.value, FeatxError) and isinstance(excinfo.value, ValueError)
    with pytest.raises(RegistryError, match="unknown scratch model"):
        get_model_info("resnet9000")


def test_register_model_forms(monkeypatch):
    monkeypatch.setattr(registry_module, "MODELS", Registry("scratch model", order="name"))

    @register_model
    def tiny(input_shape=None, classes=None):
        """Tiny test model.

        More text."""
        return (input_shape, classes)

    @register_model("Renamed", input_size=8, feature_layer="f", default_classes=3)
    def whatever(input_shape=None, classes=None, scale=1):
        return (input_shape, classes, scale)

    assert registry_module.list_models() == ["renamed", "tiny"]
    assert [i.name for i in registry_module.MODELS.list_infos()] == ["renamed", "tiny"]
    assert registry_module.get_model_info("tiny").description == "Tiny test model."
    info = registry_module.get_model_info("RENAMED")  # names are case-insensitive
    assert (info.input_size, info.feature_layer, info.default_classes) == (8, "f", 3)
    assert info.input_shape == (8, 8, 3)
    assert registry_module.create_model("renamed", (4, 4, 1), 5, scale=2) == ((4, 4, 1), 5, 2)

    with pytest.raises(RegistryError, match="'tiny' is already registered"):
        register_model(tiny)


# ---------------------------------------------------------------- architectures


@pytest.mark.parametrize("name", MODELS)
def test_canonical_build_and_param_count(name, canonical):
    info = get_model_info(name)
    model = canonical(name)
    assert model.name == name
    assert model.input_shape == (None, *_canonical_shape(name))
    assert model.output_shape == (None, info.default_classes)
    if info.params is not None:
        assert model.count_params() == info.params
    if info.feature_dim is not None:
        assert model.get_layer(info.feature_layer).output.shape[-1] == info.feature_dim


@pytest.mark.parametrize("name", MODELS)
def test_forward_pass_is_finite_softmax(name, canonical):
    model = canonical(name)
    y = keras.ops.convert_to_numpy(model(_random_batch(_canonical_shape(name)), training=False))
    assert y.shape == (2, get_model_info(name).default_classes)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_feature_layer_feeds_classifier(name, canonical):
    model = canonical(name)
    info = get_model_info(name)
    feature = model.get_layer(info.feature_layer)
    predictions = model.get_layer("predictions")
    assert model.layers[-1] is predictions
    assert predictions.input is feature.output
    assert len(feature.output.shape) == 2

    extractor = keras.Model(model.input, feature.output)
    feats = keras.ops.convert_to_numpy(extractor(_random_batch(info.input_shape), training=False))
    assert feats.shape == (2, feature.output.shape[-1])
    assert np.all(np.isfinite(feats))


@pytest.mark.parametrize("name", MODELS)
def test_layer_and_weight_names_unique_and_deterministic(name):
    first = create_model(name, input_shape=_small_shape(name))
    second = create_model(name, input_shape=_small_shape(name))
    names = [layer.name for layer in first.layers]
    assert len(names) == len(set(names))
    assert names == [layer.name for layer in second.layers]
    assert names[0] == "input" and names[-1] == "predictions"
    paths = [w.path for w in first.weights]
    assert len(paths) == len(set(paths))
    assert paths == [w.path for w in second.weights]


def test_inception_layer_names(canonical):
    mini = {layer.name for layer in canonical("minigooglenet").layers}
    assert {
        "block1_conv",
        "2a_conv_1x1",
        "2a_conv_3x3",
        "2a_concat",
        "down2_pool",
        "4b_concat",
        "avg_pool",
        "flatten",
    } <= mini
    deeper = {layer.name for layer in canonical("deepergooglenet").layers}
    assert {
        "block1_conv",
        "pool1",
        "3a_conv_1x1",
        "3a_conv_3x3_reduce",
        "3a_conv_5x5",
        "3a_pool",
        "3a_conv_pool_proj",
        "3a_concat",
        "4e_concat",
        "pool4",
    } <= deeper
    alex = {layer.name for layer in canonical("alexnet").layers}
    assert {"block1_conv", "block3_conv3", "fc1", "fc2_dropout", "predictions"} <= alex


@pytest.mark.parametrize(
    "name, shape, classes",
    [
        ("minigooglenet", (48, 48, 1), 5),
        ("deepergooglenet", (32, 32, 3), 7),
        ("alexnet", (128, 128, 3), 3),
        ("alexnet", (57, 57, 1), 2),  # smallest AlexNet input
        ("minigooglenet", (7, 9, 3), 2),  # smallest MiniGoogLeNet input, non-square
    ],
)
def test_other_input_sizes(name, shape, classes):
    model = create_model(name, input_shape=shape, classes=classes)
    y = keras.ops.convert_to_numpy(model(_random_batch(shape), training=False))
    assert y.shape == (2, classes)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_average_pool_is_book_pool_at_canonical_size(canonical):
    assert isinstance(
        canonical("minigooglenet").get_layer("avg_pool"), keras.layers.AveragePooling2D
    )
    assert isinstance(
        canonical("deepergooglenet").get_layer("avg_pool"), keras.layers.AveragePooling2D
    )
    other = create_model("minigooglenet", input_shape=(16, 16, 3))
    assert isinstance(other.get_layer("avg_pool"), keras.layers.GlobalAveragePooling2D)


def test_regularization(canonical):
    def kernel_layers(model):
        return [
            layer
            for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        ]

    alex = kernel_layers(canonical("alexnet"))
    assert len(alex) == 8
    assert all(layer.kernel_regularizer is not None for layer in alex)
    assert alex[0].kernel_regularizer.l2 == pytest.approx(2e-4)
    deeper = kernel_layers(canonical("deepergooglenet"))
    assert all(layer.kernel_regularizer is not None for layer in deeper)
    assert deeper[0].kernel_regularizer.l2 == pytest.approx(5e-4)
    # The book's MiniGoogLeNet uses no weight decay.
    assert all(
        layer.kernel_regularizer is None for layer in kernel_layers(canonical("minigooglenet"))
    )
    # reg is forwarded through create_model; 0 disables it.
    no_reg = create_model("deepergooglenet", input_shape=(16, 16, 3), reg=0)
    assert all(layer.kernel_regularizer is None for layer in kernel_layers(no_reg))


def test_mixed_precision_outputs_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = create_model("minigooglenet", input_shape=(16, 16, 3), classes=4)
        assert model.get_layer("flatten").output.dtype == "float16"
        y = model(_random_batch((16, 16, 3)), training=False)
    finally:
        keras.config.set_dtype_policy(previous)
    y = keras.ops.convert_to_numpy(y)
    assert y.dtype == np.float32
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-3)


# ----------------------------------------------------------------- validation


@pytest.mark.parametrize("classes", [1, 0, -3, 2.5, True, "10"])
def test_bad_classes(classes):
    with pytest.raises(ValueError, match="classes must be an int >= 2") as excinfo:
        create_model("minigooglenet", classes=classes)
    assert repr(classes) in str(excinfo.value)


@pytest.mark.parametrize(
    "shape",
    [(32, 32), (32, 32, 3, 1), (0, 32, 3), (32, -1, 3), (32.0, 32, 3), (None, 32, 3), "abc", 32],
)
def test_bad_input_shape(shape):
    with pytest.raises(ValueError, match="input_shape must be a tuple of 3 positive ints"):
        create_model("minigooglenet", input_shape=shape)


@pytest.mark.parametrize("name", [n for n in MODELS if get_model_info(n).min_input_size > 1])
def test_too_small_input_shape(name):
    info = get_model_info(name)
    size = info.min_input_size - 1
    with pytest.raises(ValueError, match=f"too small.*>= {info.min_input_size}"):
        create_model(name, input_shape=(size, size, 3))

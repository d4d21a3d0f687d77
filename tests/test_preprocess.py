"""featx.preprocess: crops, ten-crop windows, mean subtraction layer, augmentation, tf.data pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from featx.data.synthetic import write_synthetic_store
from featx.errors import FeatxError
from featx.preprocess.augment import Augment, augmentation_layers
from featx.preprocess.crop import center_crop, center_offsets, check_crop, random_crop
from featx.preprocess.mean import load_mean, mean_subtraction, read_mean_json, with_mean_subtraction
from featx.preprocess.tencrop import N_CROPS, average_crops, ten_crop, ten_crop_windows
from tests._scratch_helpers import register_tiny


def _images(b=3, h=6, w=7, c=3):
    return np.arange(b * h * w * c, dtype=np.float32).reshape(b, h, w, c)


# ------------------------------------------------------------------------------ crops
def test_ten_crop_windows_are_exactly_the_expected_ten():
    wins = ten_crop_windows((20, 24), 16)
    assert len(wins) == N_CROPS == 10
    got = [(w.name, w.y, w.x, w.size, w.flip) for w in wins]
    assert got == [
        ("top_left", 0, 0, 16, False),
        ("top_right", 0, 8, 16, False),
        ("bottom_left", 4, 0, 16, False),
        ("bottom_right", 4, 8, 16, False),
        ("center", 2, 4, 16, False),
        ("top_left_flip", 0, 0, 16, True),
        ("top_right_flip", 0, 8, 16, True),
        ("bottom_left_flip", 4, 0, 16, True),
        ("bottom_right_flip", 4, 8, 16, True),
        ("center_flip", 2, 4, 16, True),
    ]
    assert len({(w.y, w.x, w.flip) for w in wins}) == 10


def test_ten_crop_tensor_matches_numpy_windows_window_major():
    x = _images(b=2, h=6, w=7)
    out = ten_crop(x, 4).numpy()
    assert out.shape == (10 * 2, 4, 4, 3)
    for k, win in enumerate(ten_crop_windows((6, 7), 4)):
        ref = x[:, win.y : win.y + 4, win.x : win.x + 4]
        if win.flip:
            ref = ref[:, :, ::-1]
        np.testing.assert_array_equal(out[k * 2 : (k + 1) * 2], ref)


def test_average_crops_folds_window_major_probabilities():
    rng = np.random.default_rng(0)
    probs = rng.random((10 * 3, 4)).astype(np.float32)
    avg = average_crops(probs).numpy()
    ref = probs.reshape(10, 3, 4).mean(axis=0)
    np.testing.assert_allclose(avg, ref, rtol=1e-6)


def test_center_crop_and_offsets():
    x = _images(h=6, w=7)
    assert center_offsets((6, 7), 4) == (1, 1)
    np.testing.assert_array_equal(np.asarray(center_crop(x, 4)), x[:, 1:5, 1:5])
    with pytest.raises(ValueError, match="does not fit"):
        check_crop((6, 7), 8)


def test_random_crop_takes_an_independent_window_per_image():
    import tensorflow as tf

    tf.random.set_seed(0)
    b, h, w, crop = 32, 9, 9, 4
    x = _images(b=b, h=h, w=w)
    out = random_crop(x, crop).numpy()
    assert out.shape == (b, crop, crop, 3)
    offsets = set()
    for i in range(b):
        matches = [(y, xx) for y in range(h - crop + 1) for xx in range(w - crop + 1)
                   if np.array_equal(out[i], x[i, y : y + crop, xx : xx + crop])]
        assert len(matches) == 1, "every crop must be an exact window of its own image"
        offsets.add(matches[0])
    assert len(offsets) > 5, "offsets must be drawn per image, not once per batch"
    seeded = random_crop(x, crop, seed=tf.constant([1, 2])).numpy()
    np.testing.assert_array_equal(seeded, random_crop(x, crop, seed=tf.constant([1, 2])).numpy())
    np.testing.assert_array_equal(random_crop(x[:, :4, :4], 4), x[:, :4, :4])


# ------------------------------------------------------------------------------ mean
def test_mean_layer_is_inside_a_flat_model_and_survives_save_load(tmp_path):
    import keras

    import scratch_models

    name = register_tiny()
    base = scratch_models.create_model(name, input_shape=(8, 8, 3), classes=3)
    mean = [10.0, 20.0, 30.0]
    model = with_mean_subtraction(base, mean)
    assert [layer.name for layer in model.layers[:3]] == ["input", "mean_subtraction", "conv1"]
    assert model.get_layer("gap") is base.get_layer("gap")
    assert model.count_params() == base.count_params()
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(model(x, training=False), base(x - np.float32(mean), training=False), rtol=1e-5, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom objects needed
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mean_subtraction(mean)(x), x - np.float32(mean), rtol=1e-6)


def test_load_mean_sources(tmp_path):
    from featx.store import open_store
    from featx.utils import atomic_write_json

    p = write_synthetic_store(tmp_path / "a.h5", 6, 8, 2, compute_mean=True)
    with open_store(p) as r:
        assert load_mean(r) == pytest.approx(r.mean_rgb)
        atomic_write_json(tmp_path / "m.json", {"R": 1, "G": 2, "B": 3})
        assert load_mean(r, tmp_path / "m.json") == [1.0, 2.0, 3.0]
    q = write_synthetic_store(tmp_path / "b.h5", 6, 8, 2, compute_mean=False)
    with open_store(q) as r:
        with pytest.raises(FeatxError, match="no mean_rgb"):
            load_mean(r)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(FeatxError, match="cannot read RGB means"):
        read_mean_json(tmp_path / "bad.json")


# ------------------------------------------------------------------------------ augmentation
def test_augment_validation_and_layers():
    assert augmentation_layers(Augment(enabled=False)) is None
    assert augmentation_layers(Augment(flip=False, rotation=0, zoom=0, shift=0)) is None
    with pytest.raises(ValueError, match="rotation"):
        Augment(rotation=-1)
    with pytest.raises(ValueError, match="fractions"):
        Augment(zoom=1.5)
    aug = augmentation_layers(Augment(), seed=1)
    assert [layer.name for layer in aug.layers] == ["flip", "rotation", "zoom", "shift"]
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    y = np.asarray(aug(x, training=True))
    assert y.shape == x.shape
    assert not np.allclose(y, x)


# ------------------------------------------------------------------------------ pipeline
def test_train_dataset_every_row_every_epoch_partial_batch_kept(tmp_path):
    from featx.preprocess.pipeline import eval_dataset, steps_per_epoch, train_dataset
    from featx.store import open_store

    p = write_synthetic_store(tmp_path / "t.h5", 37, 12, 3)
    with open_store(p) as r:
        ds = train_dataset(r, 16, 8, augment=Augment(), seed=3, block_rows=8)
        assert int(ds.cardinality()) == steps_per_epoch(37, 16) == 3
        orders = []
        for _ in range(2):
            sizes, ys = [], []
            for x, y in ds:
                assert tuple(x.shape[1:]) == (8, 8, 3) and x.dtype.name == "float32"
                sizes.append(int(x.shape[0]))
                ys.extend(y.numpy().tolist())
            assert sizes == [16, 16, 5]
            assert sorted(ys) == sorted(r.labels.tolist())
            orders.append(ys)
        assert orders[0] != orders[1], "blocks must be reshuffled every epoch"
        ev = [(x.numpy(), y.numpy()) for x, y in eval_dataset(r, 16, 8)]
        np.testing.assert_array_equal(np.concatenate([y for _, y in ev]), r.labels)
        np.testing.assert_array_equal(ev[0][0], r.read(0, 16)[:, 2:10, 2:10].astype(np.float32))

"""HDF5 images store -> ``tf.data`` batches for training and validation (TensorFlow backend), or
the same batches as a ``keras.utils.PyDataset`` (:mod:`featx.preprocess.sequence`) elsewhere.

The store's reader yields contiguous blocks in a new seeded order every epoch, every row once, the
last partial batch kept (:meth:`featx.store.StoreReader.tf_dataset`). On top of it, a parallel
``map`` casts to float32, crops to the network input (a random patch per image for training, the
center for validation) and applies the augmentation layers; ``prefetch(AUTOTUNE)`` overlaps all of
it with the training step. Mean subtraction is not done here: it is the model's first layer.
"""

from __future__ import annotations

import math

from featx.preprocess.augment import Augment, augmentation_layers
from featx.preprocess.crop import center_crop, random_crop


def steps_per_epoch(rows: int, batch_size: int) -> int:
    """Batches in one epoch, the last partial one included."""
    return math.ceil(rows / batch_size)


def _tf() -> bool:
    from featx.runtime.backend import configured_backend

    return configured_backend() == "tensorflow"


def _with_cardinality(ds, steps: int):
    import tensorflow as tf

    return ds.apply(tf.data.experimental.assert_cardinality(steps))


def train_dataset(
    reader,
    batch_size: int,
    input_size: int,
    *,
    augment: Augment | None = None,
    seed: int = 0,
    initial_epoch: int = 0,
    block_rows: int | None = None,
    classes: int | None = None,
    shard: tuple[int, int] | None = None,
    multiple: int = 1,
):
    """Shuffled, cropped, augmented float32 ``(x, y)`` batches, reshuffled each epoch (``y``
    one-hot when ``classes`` is given, e.g. for label smoothing). ``shard``/``multiple``: JAX data
    parallel only (:class:`featx.preprocess.sequence.StoreSequence`)."""
    aug = augmentation_layers(augment or Augment(enabled=False), seed=seed)
    if not _tf():
        from featx.preprocess.sequence import StoreSequence

        return StoreSequence(reader.path, batch_size, input_size, shuffle=True, seed=seed, initial_epoch=initial_epoch,
                             block_rows=block_rows, crop="random", classes=classes, augment=aug, shard=shard,
                             multiple=multiple)
    import tensorflow as tf

    ds = reader.tf_dataset(batch_size, shuffle=True, seed=seed, initial_epoch=initial_epoch, block_rows=block_rows)
    ds = _with_cardinality(ds, steps_per_epoch(len(reader), batch_size))

    def prep(x, y):
        x = random_crop(tf.cast(x, tf.float32), input_size)
        if aug is not None:
            x = aug(x, training=True)
        return x, _labels(y, classes)

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _labels(y, classes: int | None):
    import tensorflow as tf

    return y if classes is None else tf.one_hot(y, classes)


def eval_dataset(reader, batch_size: int, input_size: int | None = None, *, crop: bool = True,
                 classes: int | None = None, shard: tuple[int, int] | None = None, multiple: int = 1):
    """In-order float32 ``(x, y)`` batches, center-cropped to ``input_size`` when ``crop`` (``y``
    one-hot when ``classes`` is given)."""
    if not _tf():
        from featx.preprocess.sequence import StoreSequence

        return StoreSequence(reader.path, batch_size, input_size, crop="center" if crop else None, classes=classes,
                             shard=shard, multiple=multiple)
    import tensorflow as tf

    ds = reader.tf_dataset(batch_size, shuffle=False)
    ds = _with_cardinality(ds, steps_per_epoch(len(reader), batch_size))

    def prep(x, y):
        x = tf.cast(x, tf.float32)
        if crop and input_size is not None:
            x = center_crop(x, input_size)
        return x, _labels(y, classes)

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def batchnorm_dataset(reader, batch_size: int, input_size: int, *, images: int, seed: int = 0,
                      shard: tuple[int, int] | None = None, multiple: int = 1):
    """Float32 image batches for recomputing BatchNorm statistics: about ``images`` training rows
    in a new shuffled order at each pass, center-cropped, not augmented (what the saved model sees)."""

    steps = max(1, math.ceil(min(images, len(reader)) / batch_size))
    if not _tf():
        from featx.preprocess.sequence import StoreSequence

        return StoreSequence(reader.path, batch_size, input_size, shuffle=True, seed=seed, crop="center",
                             steps=steps, labels=False, shard=shard, multiple=multiple), steps
    import tensorflow as tf

    ds = reader.tf_dataset(batch_size, shuffle=True, seed=seed)

    def prep(x, y):
        return center_crop(tf.cast(x, tf.float32), input_size)

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).take(steps).prefetch(tf.data.AUTOTUNE), steps

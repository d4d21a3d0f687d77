"""Random patch crops (training) and center crops (validation, single-crop evaluation).

Keras' ``RandomCrop`` layer crops every image of a batch at the *same* location; the book's
PatchPreprocessor draws a location per image, which is the augmentation we want when stored
images are larger than the network input. :func:`random_crop` does that, vectorised with two
batched gathers (exact pixels, no interpolation), so it runs inside a ``tf.data`` map.
"""

from __future__ import annotations


def check_crop(image_size: tuple[int, int], crop: int) -> None:
    """Raise ``ValueError`` when a ``crop`` x ``crop`` window does not fit ``image_size`` (H, W)."""
    h, w = int(image_size[0]), int(image_size[1])
    if crop < 1 or crop > h or crop > w:
        raise ValueError(f"crop {crop}px does not fit images of {h}x{w}px")


def center_offsets(image_size: tuple[int, int], crop: int) -> tuple[int, int]:
    """Top-left corner ``(y, x)`` of the centered ``crop`` window (rounded down)."""
    check_crop(image_size, crop)
    return (int(image_size[0]) - crop) // 2, (int(image_size[1]) - crop) // 2


def center_crop(images, crop: int):
    """Center ``crop`` x ``crop`` window of a batch ``(B, H, W, C)`` (a slice: no copy of pixels)."""
    y, x = center_offsets(images.shape[1:3], crop)
    return images[:, y : y + crop, x : x + crop, :]


def random_crop(images, crop: int, seed=None):
    """An independent random ``crop`` x ``crop`` window for each image of a batch ``(B, H, W, C)``.

    ``seed``: a shape-[2] int tensor for stateless sampling (deterministic), or None (stateful).
    """
    import tensorflow as tf

    h, w = int(images.shape[1]), int(images.shape[2])
    check_crop((h, w), crop)
    if h == crop and w == crop:
        return images
    n = tf.shape(images)[0]
    if seed is None:
        ys = tf.random.uniform([n], 0, h - crop + 1, dtype=tf.int32)
        xs = tf.random.uniform([n], 0, w - crop + 1, dtype=tf.int32)
    else:
        ys = tf.random.stateless_uniform([n], seed, 0, h - crop + 1, dtype=tf.int32)
        xs = tf.random.stateless_uniform([n], seed + 1, 0, w - crop + 1, dtype=tf.int32)
    window = tf.range(crop, dtype=tf.int32)
    rows = ys[:, None] + window[None, :]  # (B, crop)
    cols = xs[:, None] + window[None, :]
    out = tf.gather(images, rows, axis=1, batch_dims=1)  # (B, crop, W, C)
    return tf.gather(out, cols, axis=2, batch_dims=1)  # (B, crop, crop, C)

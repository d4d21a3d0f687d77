"""Ten-crop oversampling: the 4 corners and the center at the network input size, plus their
horizontal mirrors (the book's CropPreprocessor), for all images of a batch at once.

:func:`ten_crop` returns the 10 crops stacked crop-major, ``(10 * B, crop, crop, C)``, so one
forward pass scores them all; :func:`average_crops` folds the ``(10 * B, K)`` probabilities back
to ``(B, K)`` on the device.
"""

from __future__ import annotations

from typing import NamedTuple

from featx.preprocess.crop import check_crop

N_CROPS = 10


class Window(NamedTuple):
    """One crop: top-left corner ``(y, x)``, side ``size``, and whether it is mirrored."""

    name: str
    y: int
    x: int
    size: int
    flip: bool


def ten_crop_windows(image_size: tuple[int, int], crop: int) -> list[Window]:
    """The 10 windows for images of ``image_size`` (H, W): corners, center, then their mirrors."""
    check_crop(image_size, crop)
    h, w = int(image_size[0]), int(image_size[1])
    base = [
        ("top_left", 0, 0),
        ("top_right", 0, w - crop),
        ("bottom_left", h - crop, 0),
        ("bottom_right", h - crop, w - crop),
        ("center", (h - crop) // 2, (w - crop) // 2),
    ]
    plain = [Window(n, y, x, crop, False) for n, y, x in base]
    return plain + [Window(f"{n}_flip", y, x, crop, True) for n, y, x in base]


def ten_crop(images, crop: int):
    """``(B, H, W, C)`` -> ``(10 * B, crop, crop, C)``: window-major (all images' window 0 first).

    Written with ``keras.ops``: runs on any Keras backend, inside a compiled function too.
    """
    from keras import ops

    crops = []
    for win in ten_crop_windows(images.shape[1:3], crop):
        c = images[:, win.y : win.y + crop, win.x : win.x + crop, :]
        crops.append(ops.flip(c, axis=2) if win.flip else c)
    return ops.concatenate(crops, axis=0)


def average_crops(probs, n_crops: int = N_CROPS):
    """``(n_crops * B, K)`` window-major probabilities -> ``(B, K)`` mean over the crops."""
    from keras import ops

    k = probs.shape[-1]
    return ops.mean(ops.reshape(probs, (n_crops, -1, k)), axis=0)

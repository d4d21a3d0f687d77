"""Small datasets that ship with the install, written out as image folders (no network needed)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

#: class folder names: the digits themselves, so that label order (sorted names) is numeric order in
#: every table and confusion matrix (the words sorted as eight, five, four, nine, ...)
DIGIT_NAMES = [str(d) for d in range(10)]
#: the folder names featx 0.2 wrote (refused in an existing folder: they would double the classes)
OLD_DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_digits(
    out_dir: str | os.PathLike,
    *,
    per_class: int | None = None,
    size: int = 64,
    classes: int = 10,
    seed: int = 0,
    ext: str = ".png",
) -> Path:
    """Write scikit-learn's digits (1,797 8x8 scans) as ``size x size`` RGB images in class folders.

    Each digit is upscaled, tinted with a random colour on a random background shade and shifted a
    little, so the images look like small photos rather than 8x8 masks. Deterministic for a seed.
    Existing files are kept (writing is idempotent). Returns ``out_dir``.
    """
    from sklearn.datasets import load_digits

    out = Path(out_dir)
    old = [n for n in OLD_DIGIT_NAMES if (out / n).is_dir()]
    if old:
        from featx.errors import FeatxError

        raise FeatxError(f"{out} holds digit folders named by an older featx ({', '.join(old[:3])}, ...); the classes "
                         "are now named 0-9: delete that folder (or use another) and run again")
    digits = load_digits()
    rng = np.random.default_rng(seed)
    for c in range(classes):
        (out / DIGIT_NAMES[c]).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(range(classes), 0)
    for i, (img, y) in enumerate(zip(digits.images, digits.target)):
        y = int(y)
        if y >= classes or (per_class is not None and counts[y] >= per_class):
            continue
        counts[y] += 1
        fg = rng.integers(120, 256, 3)
        bg = rng.integers(0, 90, 3)
        mask = cv2.resize((img / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        shift = rng.integers(-size // 10, size // 10 + 1, 2)
        mask = np.roll(np.clip(mask, 0, 1), tuple(shift), axis=(0, 1))
        rgb = (bg[None, None] * (1 - mask[..., None]) + fg[None, None] * mask[..., None]).astype(np.uint8)
        noise = rng.normal(0, 6, rgb.shape)
        rgb = np.clip(rgb + noise, 0, 255).astype(np.uint8)
        path = out / DIGIT_NAMES[y] / f"{DIGIT_NAMES[y]}_{i:04d}{ext}"
        if not path.exists():
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return out

"""Thumbnails of the rows the page shows, inlined as ``data:`` URIs.

Pixels are looked for, in order: in the images stores given (``--images``, rows matched by their
``paths``), in the images store the features were extracted from (recorded in the features file),
and in the source files the ``paths`` name (under the image folder recorded in the features file,
or as given). A row whose pixels are nowhere readable gets no thumbnail (the page says so); a
broken file never stops the page.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

#: Longest side of a thumbnail, in pixels.
THUMB_PX = 112


class Thumbnails:
    def __init__(self, stores=(), *, px: int = THUMB_PX):
        self.px = px
        self._stores: list[Path] = [Path(s) for s in stores]
        self._index: dict[str, tuple[Path, int]] | None = None
        self.missing = 0

    def add_store(self, path: str | os.PathLike) -> None:
        p = Path(path)
        if p not in self._stores:
            self._stores.append(p)
            self._index = None

    def _lookup(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            from featx.errors import FeatxError
            from featx.store import open_store

            self._index = {}
            for s in self._stores:
                try:
                    with open_store(s, kind="images") as r:
                        for k, name in enumerate(r.paths):
                            self._index.setdefault(name, (s, k))
                except FeatxError:
                    continue  # an images store that cannot be read gives no thumbnails
        return self._index

    def uri(self, path: str, source: tuple[str, str] | None) -> str | None:
        """A ``data:image/png`` URI of the row named ``path``, or ``None`` when its pixels are not found."""
        from featx.report import png_data_uri

        try:
            img = self._pixels(path, source)
        except Exception:  # noqa: BLE001 - a thumbnail is optional: an unreadable file is a missing one
            img = None
        if img is None:
            self.missing += 1
            return None
        from PIL import Image

        im = Image.fromarray(img if img.shape[-1] == 3 else img[..., 0]) if img.ndim == 3 else Image.fromarray(img)
        im.thumbnail((self.px, self.px))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG")
        return png_data_uri(buf.getvalue())

    def _pixels(self, path: str, source) -> np.ndarray | None:
        from featx.store import open_store

        hit = self._lookup().get(path)
        if hit is None and source and source[0] == "images" and Path(source[1]).is_file():
            self.add_store(source[1])
            hit = self._lookup().get(path)
        if hit is not None:
            with open_store(hit[0], kind="images") as r:
                return np.asarray(r.read(hit[1], hit[1] + 1)[0])
        candidates = [Path(source[1]) / path] if source and source[0] == "folder" else []
        candidates.append(Path(path))
        for c in candidates:
            if c.is_file():
                from PIL import Image

                with Image.open(c) as im:
                    im.draft("RGB", (self.px * 2, self.px * 2))  # JPEG: decode at a reduced size
                    im = im.convert("RGB")
                    im.thumbnail((self.px, self.px))
                    return np.asarray(im)
        return None

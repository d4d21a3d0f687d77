"""Decode any image file to RGB uint8 and resize it, or say exactly why it cannot be used.

Pillow decodes (it refuses truncated files instead of returning half an image, as OpenCV does),
EXIF orientation is applied, gray / alpha / palette / CMYK / 16-bit images become 3-channel RGB,
and JPEGs are decoded at a reduced DCT scale when the target is much smaller (``Image.draft``).
OpenCV does the resizing.

Decompression bombs: the pixel count an image declares in its header is checked against a budget
(``max_pixels``, default Pillow's ``Image.MAX_IMAGE_PIXELS``, about 89 M) *before* any pixel is
decoded; a larger image is skipped with its size in the reason. Pillow's own bomb check is left on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import struct
import threading
import warnings
import zlib

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from featx.constants import DEFAULT_MAX_PIXELS, RESIZE_MODES  # noqa: F401 - defined there for the CLI

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Pillow formats featx opens (whatever the extension says): the formats of IMAGE_EXTENSIONS, plus
#: GIF (multi-picture JPEGs open as MPO through the JPEG plugin). Others (EPS runs Ghostscript, PSD, ICO, ...) are refused.
PIL_FORMATS = ("JPEG", "PNG", "BMP", "DIB", "WEBP", "TIFF", "GIF")


def check_resize(resize: str) -> None:
    """Raise a one-line :class:`~featx.errors.FeatxError` unless ``resize`` is a known mode."""
    if resize not in RESIZE_MODES:
        from featx.errors import FeatxError

        raise FeatxError(f"--resize must be one of {', '.join(RESIZE_MODES)}. Received: {resize!r}")


class ImageDecodeError(Exception):
    """This file gives no image; ``str(e)`` is the reason listed in skip reports."""


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _to_rgb(img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.uint32 if mode == "I" else np.uint16)
        if a.max(initial=0) > 255:
            a = a >> 8  # 16-bit samples to 8-bit
        a = np.clip(a, 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(img, dtype=np.float32)
        a = np.clip(a * (255.0 if a.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # composite on white: transparent pixels must not turn into arbitrary colours
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        view = _pixel_view(rgba)
        if view is not None:
            return _on_white(view, out)
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    elif mode == "L":
        view = _pixel_view(img)
        if view is not None:  # gray to RGB in one OpenCV pass (Pillow's convert + the copy: two)
            capsule, gray = view
            res = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB, dst=_dst(out, gray.shape))
            del capsule  # after the copy above
            return _into(res, out)
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV, RGBX ...
    return rgb_array(img, out)


class _ArrowArray(ctypes.Structure):
    """``struct ArrowArray`` of the Arrow C data interface (a frozen ABI)."""


_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.POINTER(_ArrowArray)),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
# a read-only memoryview of foreign memory: no ctypes array type per image size (each new size
# made and cached a type: 2.4% of a decoding thread's time on mixed sizes)
_memory_view = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view.restype = ctypes.py_object
_memory_view.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PyBUF_READ = 0x100


def _rgbx_view(img: Image.Image):
    """``(capsule, (H, W, 4) uint8 view)`` of the memory of a loaded RGB image, or ``None``.

    Pillow keeps RGB pixels as 4 bytes (R, G, B, pad) and exports that memory through the Arrow C
    data interface (Pillow >= 11.2) as ``fixed_size_list<uint8>[4]``; the view is valid while the
    capsule lives. ``None`` when the export is missing or not that layout (older Pillow; a large
    image kept in several blocks).
    """
    return _pixel_view(img) if img.mode == "RGB" else None


#: Pillow modes whose pixels :func:`_pixel_view` shares: 4 bytes (RGB + pad, RGBA) or 1 byte (L).
_VIEW_CHANNELS = {"RGB": 4, "RGBA": 4, "L": 1}


def _pixel_view(img: Image.Image):
    """``(capsule, view)`` of a loaded RGB / RGBA / L image's memory: ``(H, W, 4)`` uint8 for RGB
    (R, G, B, pad) and RGBA, ``(H, W)`` for L; or ``None`` (see :func:`_rgbx_view`)."""
    w, h = img.size
    channels = _VIEW_CHANNELS.get(img.mode)
    if channels is None or not w or not h:
        return None
    try:
        capsule = img.im.__arrow_c_array__()
        arr = _ArrowArray.from_address(_capsule_pointer(capsule, b"arrow_array"))
        if arr.offset != 0 or arr.length != w * h:
            return None
        if channels == 4:
            if arr.n_children != 1:
                return None
            arr = arr.children[0].contents
            if arr.offset != 0 or arr.length != 4 * w * h:
                return None
        elif arr.n_children != 0:
            return None
        if arr.n_buffers != 2 or not arr.buffers[1]:
            return None
        data = _memory_view(arr.buffers[1], channels * w * h, _PyBUF_READ)
    except (AttributeError, ValueError, TypeError, OSError):
        return None
    view = np.frombuffer(data, np.uint8)
    return capsule, view.reshape(h, w, 4) if channels == 4 else view.reshape(h, w)


def _dst(out: np.ndarray | None, shape: tuple) -> np.ndarray | None:
    """``out`` when it can take an ``(H, W, 3)`` uint8 image of ``shape[:2]`` in place, else None."""
    if out is not None and out.shape == (*shape[:2], 3) and out.dtype == np.uint8 and out.flags.c_contiguous:
        return out
    return None


def _into(res: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """OpenCV's result, in ``out`` when ``out`` was its destination."""
    if out is not None and res is not out and _dst(out, res.shape) is out:  # pragma: no cover - OpenCV writes into a matching dst
        np.copyto(out, res)
        return out
    return res


def _on_white(view, out: np.ndarray | None = None) -> np.ndarray:
    """RGB of RGBA pixels (``(capsule, (H, W, 4) view)``) composited on opaque white: exactly
    Pillow's ``alpha_composite(white, image).convert("RGB")`` (its integer arithmetic on white
    reduces to ``255 - round(a * (255 - c) / 255)``, checked on all 65,536 pairs of channel value
    and alpha in tests/test_data.py), in three OpenCV passes instead of four Pillow ones and copies."""
    capsule, rgba = view
    rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB, dst=_dst(out, rgba.shape))
    alpha = cv2.cvtColor(cv2.extractChannel(rgba, 3), cv2.COLOR_GRAY2RGB)
    del capsule  # both copies are made
    cv2.bitwise_not(rgb, dst=rgb)  # 255 - c
    cv2.multiply(rgb, alpha, dst=rgb, scale=1 / 255)  # round(a * (255 - c) / 255): never a tie
    cv2.bitwise_not(rgb, dst=rgb)
    return _into(rgb, out)


def rgb_array(img: Image.Image, out: np.ndarray | None = None) -> np.ndarray:
    """A C-contiguous ``(H, W, 3)`` uint8 copy of a loaded RGB Pillow image.

    One OpenCV pass over Pillow's own memory (:func:`_rgbx_view`) drops the pad byte: 20x faster
    than ``np.asarray(img)``, which goes through ``tobytes()`` (an encoder, a join, then numpy),
    and the same bytes. Falls back to ``np.asarray`` where the memory cannot be shared. ``out``:
    a C-contiguous uint8 array to write into (returned) when it has the image's shape.
    """
    view = _rgbx_view(img)
    if view is None:
        return np.asarray(img, dtype=np.uint8)
    capsule, rgbx = view
    res = cv2.cvtColor(rgbx, cv2.COLOR_RGBA2RGB, dst=_dst(out, rgbx.shape))
    del capsule  # releases Pillow's export (after the copy above)
    return _into(res, out)


#: PNG chunks that change no decoded pixel, neither in Pillow nor in OpenCV: no transparency (tRNS),
#: text (EXIF and XMP orientation live in eXIf / text chunks), animation or anything unknown; and
#: none that libpng often warns about on stderr (iCCP: "known incorrect sRGB profile"...).
_PNG_PLAIN_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"pHYs"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _plain_png(data: bytes) -> bool:
    """True for a whole 8-bit RGB or RGBA PNG (IHDR colour type 2 or 6) of :data:`_PNG_PLAIN_CHUNKS`
    only, every chunk inside the file up to IEND, the CRCs of all but the image data right (libpng
    checks those; anything else: Pillow decodes, and decides, as before)."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return False
    if data[24] != 8 or data[25] not in (2, 6):  # bit depth, colour type
        return False
    pos, n = 8, len(data)
    while pos + 8 <= n:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind not in _PNG_PLAIN_CHUNKS:
            return False
        end = pos + 12 + length  # length, type, data, CRC
        if end > n:
            return False  # truncated: Pillow says so
        if kind != b"IDAT" and zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            return False  # libpng would only warn (on stderr) and go on
        pos = end
        if kind == b"IEND":
            return True
    return False


_IMREAD_COLOR_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def _opencv_png(path, img: Image.Image, out: np.ndarray | None) -> tuple[np.ndarray, bool] | None:
    """``(pixels, is_bgr)`` of a plain 8-bit RGB / RGBA PNG (:func:`_plain_png`) decoded by OpenCV,
    alpha composited on white (:func:`_on_white`), into ``out`` when it has the image's shape (RGBA
    comes as BGR; RGB as RGB where OpenCV has ``IMREAD_COLOR_RGB``); ``None`` for any other file or
    when OpenCV refuses it (Pillow then decodes it, and decides, as before).

    PNG is lossless, so libpng gives Pillow's pixels: 10-20% less time per PNG here (no 4-byte
    pixels to repack; faster inflate), the same bytes (tests/test_build_bytes.py, test_data.py)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    if not _plain_png(data):
        return None
    w, h = img.size
    channels = 4 if img.mode == "RGBA" else 3
    # 8-bit RGB: OpenCV >= 4.10 can keep libpng's RGB order (no swap in libpng, none after resizing)
    flag = cv2.IMREAD_UNCHANGED if channels == 4 or _IMREAD_COLOR_RGB is None else _IMREAD_COLOR_RGB
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None
    if arr is None or arr.dtype != np.uint8 or arr.shape != (h, w, channels):
        return None
    bgr = flag == cv2.IMREAD_UNCHANGED
    if channels == 4:
        return _on_white((None, arr), out), bgr  # BGRA -> BGR: the formula is the same for every channel
    if _dst(out, arr.shape) is out and out is not None:
        np.copyto(out, arr)
        return out, bgr
    return arr, bgr


def _allow_pixels(max_pixels: int) -> None:
    """Let Pillow open what the caller's budget allows (a budget above Pillow's default was asked for)."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """Raise :class:`ImageDecodeError` if a ``width x height`` image is over the pixel budget."""
    budget = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > budget:
        raise ImageDecodeError(
            f"image too large ({width}x{height} = {width * height:,} pixels > --max-pixels {budget:,}; "
            "not decoded)"
        )


def read_rgb(
    path: str | os.PathLike, *, min_side: int | None = None, max_pixels: int | None = None,
    out: np.ndarray | None = None, with_order: bool = False,
) -> np.ndarray:
    """Decode ``path`` into an ``(H, W, 3)`` uint8 RGB array with EXIF orientation applied.

    ``out``: when the decoded image has exactly its shape, the pixels are written into it (and
    ``out`` is returned): no copy for images already at the stored size.

    ``min_side`` lets JPEG decoding use a reduced scale as long as both sides stay >= ``min_side``.
    ``max_pixels`` (default :data:`DEFAULT_MAX_PIXELS`) is checked against the size in the header
    before decoding. Raises :class:`ImageDecodeError` with a short reason for empty, truncated,
    oversized or non-image files.

    ``with_order=True`` returns ``(pixels, is_bgr)`` instead: plain 8-bit PNGs come in OpenCV's
    BGR order (:func:`_opencv_png`), for a caller that resizes to swap the smaller image. Every
    decoding path (build's slabs, extract's readers, :func:`load_image`) reads through here.
    """
    arr, bgr = _read(path, min_side, max_pixels, out)
    if with_order:
        return arr, bgr
    return _bgr_to_rgb(arr) if bgr else arr


def _bgr_to_rgb(arr: np.ndarray) -> np.ndarray:
    """OpenCV's BGR order to RGB, in place (a C-contiguous ``(H, W, 3)`` uint8 array)."""
    return _into(cv2.cvtColor(arr, cv2.COLOR_BGR2RGB, dst=_dst(arr, arr.shape)), arr)


#: The filter decoding threads share (``warnings.filterwarnings("ignore", module=...)``'s entry).
_PIL_FILTER = ("ignore", None, Warning, re.compile(r"PIL(\.|$)"), 0)


@contextlib.contextmanager
def _pil_warnings_ignored():
    """Pillow's warnings silenced while decoding. ``warnings`` filters are process-wide and
    ``catch_warnings`` is not thread-safe: entered and left by decoding threads it left a catch-all
    ``ignore`` filter in the process for good (every later warning lost). So only the main thread
    uses it; decoding threads share one filter for the warnings of Pillow's own modules, put back
    when missing (someone's ``catch_warnings`` may have dropped it), so a process that decodes on
    threads shows no Pillow warnings."""
    if threading.current_thread() is threading.main_thread():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
        return
    if _PIL_FILTER not in warnings.filters:
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
    yield


def _read(path, min_side: int | None, max_pixels: int | None, out: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """:func:`read_rgb`'s pixels and whether they are in OpenCV's BGR order (plain 8-bit PNGs
    decoded by OpenCV: :func:`_opencv_png`), so a caller that resizes swaps the smaller image."""
    if max_pixels is not None:
        _allow_pixels(max_pixels)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ImageDecodeError(f"cannot read file ({e.strerror or e})") from None
    if size == 0:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with _pil_warnings_ignored():  # e.g. "Possibly corrupt EXIF data": we check below
            with Image.open(path, formats=PIL_FORMATS) as img:  # reads the header only
                check_pixels(*img.size, max_pixels)
                if img.format == "PNG" and img.mode in ("RGB", "RGBA"):
                    decoded = _opencv_png(path, img, out)
                    if decoded is not None:
                        return decoded
                if min_side and img.format == "JPEG":
                    img.draft("RGB", (min_side, min_side))
                img.load()
                ImageOps.exif_transpose(img, in_place=True)  # (not in place, it copies every image)
                arr = _to_rgb(img, out)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognized format)") from None
    except Image.DecompressionBombError as e:  # Pillow's own guard (> 2x its limit) fired in open()
        declared = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(declared.group(1)):,} pixels" if declared else "its declared size"
        budget = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
        raise ImageDecodeError(f"image too large ({pixels} > --max-pixels {budget:,}; not decoded)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated image"
        raise ImageDecodeError(f"undecodable image ({msg})") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"undecodable image (shape {arr.shape})")
    return np.ascontiguousarray(arr), False


def _interpolation(scale: float) -> int:
    """Area averaging for strong reductions; bilinear for the last < 2x step (3x faster, and JPEGs
    reach it after ``draft`` has done the coarse reduction in the DCT domain)."""
    return cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR


def aspect_aware_resize(image: np.ndarray, width: int, height: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """Resize the shorter side to the target, then center-crop (the book's AspectAwarePreprocessor).

    ``out``: a C-contiguous ``(height, width, C)`` uint8 array to write the crop into (returned).
    """
    height = height or width
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=_interpolation(scale))
    top, left = (nh - height) // 2, (nw - width) // 2
    crop = resized[top : top + height, left : left + width]
    if out is None:
        return np.ascontiguousarray(crop)
    np.copyto(out, crop)
    return out


def plain_resize(image: np.ndarray, width: int, height: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """Resize to exactly ``width x height``, ignoring the aspect ratio (into ``out`` when given)."""
    height = height or width
    h, w = image.shape[:2]
    resized = cv2.resize(image, (width, height), dst=out, interpolation=_interpolation(min(width / w, height / h)))
    if out is not None and resized is not out:  # OpenCV wrote elsewhere (it does not for a matching array)
        np.copyto(out, resized)
        return out
    return resized


def load_image(
    path: str | os.PathLike, size: int | None, resize: str = "aspect", *, max_pixels: int | None = None
) -> np.ndarray:
    """Decode and resize to ``size x size`` RGB uint8 (``size=None`` keeps the decoded size).

    Images declaring more than ``max_pixels`` pixels are refused before decoding (:func:`read_rgb`).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}. Received: resize={resize!r}")
    if size is None:
        return read_rgb(path, max_pixels=max_pixels)
    # aspect mode: the shorter side must stay >= size after draft; plain mode: both sides
    img, bgr = read_rgb(path, min_side=size, max_pixels=max_pixels, with_order=True)
    if img.shape[0] != size or img.shape[1] != size:
        img = aspect_aware_resize(img, size) if resize == "aspect" else plain_resize(img, size)
    return _bgr_to_rgb(img) if bgr else img  # swapped after resizing (channel by channel: the same pixels)


def load_image_into(
    path: str | os.PathLike, out: np.ndarray, resize: str = "aspect", *, max_pixels: int | None = None
) -> None:
    """:func:`load_image` of ``path`` at ``out``'s size, written into ``out`` (a C-contiguous
    ``(size, size, 3)`` uint8 array, e.g. one row of a slab): the same pixels, one copy fewer."""
    size = out.shape[0]
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {RESIZE_MODES}. Received: resize={resize!r}")
    img, bgr = read_rgb(path, min_side=size, max_pixels=max_pixels, out=out, with_order=True)
    if img is out:
        pass  # decoded at the stored size, straight into the row
    elif img.shape == out.shape:
        np.copyto(out, img)
    elif resize == "aspect":
        aspect_aware_resize(img, size, out=out)
    else:
        plain_resize(img, size, out=out)
    if bgr:  # resizing works channel by channel: swap the small image, not the large one
        _bgr_to_rgb(out)


def skip_reason(e: BaseException) -> str:
    """The reason listed in skip reports for an exception raised while decoding one file."""
    if isinstance(e, ImageDecodeError):
        return str(e)
    if isinstance(e, MemoryError):
        return "undecodable image (out of memory while decoding)"
    return f"undecodable image ({type(e).__name__}: {e})"


def decode_task(args: tuple) -> tuple[int, np.ndarray | None, str | None]:
    """Worker entry point: ``(index, path, size, resize[, max_pixels]) -> (index, image or None, reason or None)``."""
    index, path, size, resize, *rest = args
    max_pixels = rest[0] if rest else None
    try:
        return index, load_image(path, size, resize, max_pixels=max_pixels), None
    except Exception as e:  # noqa: BLE001 - one odd file must not stop a 100k-image build
        return index, None, skip_reason(e)


def init_worker() -> None:
    """Pool initializer: one OpenCV thread per process (the pool is the parallelism)."""
    cv2.setNumThreads(1)


def init_pool_worker() -> None:
    """Initializer of a decode pool's worker processes: :func:`init_worker`, and quiet on signals
    (:func:`featx.runtime.signals.quiet_worker`: the parent handles Ctrl-C and SIGTERM)."""
    from featx.runtime.signals import quiet_worker

    quiet_worker()
    init_worker()

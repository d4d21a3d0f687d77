"""Input pipelines that feed the mapper: image files or an images HDF5 -> batches.

* :func:`image_dataset`: image files -> parallel decode + resize (featx's own
  :func:`~featx.data.decode.load_image`: EXIF, gray, CMYK, alpha, 16-bit), in source order,
  batched and prefetched. A file that cannot be decoded yields a blank image and its reason.
  Decoders: ``threads`` (:func:`featx.data.loader.iter_image_batches`: a thread pool writing
  into batch buffers, no TensorFlow: the JAX and PyTorch backends' path), ``tfdata`` (the same
  decode in ``tf.data`` threads; TensorFlow backend only), ``pool`` (a process pool behind
  ``tf.data``); ``auto`` is ``tfdata`` on TensorFlow (measured no slower there once running:
  ``scripts/bench_extract.py --decoders``), ``threads`` elsewhere. Every decoder gives
  the same rows, skips and pixels (tests/test_loader.py).
* :func:`store_dataset`: rows of an images HDF5 written by ``featx build`` -> contiguous batches
  (the file is opened inside the generator, so the dataset can be built in any worker).

Every dataset element is ``(index int64 (B,), images uint8 (B, H, W, 3), reason string (B,))`` with
``reason == b""`` for a usable image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from featx.data.decode import decode_task

DECODERS = ("auto", "threads", "tfdata", "pool")
#: Batches decoded ahead of the model.
PREFETCH_BATCHES = 2


def _finish(ds):
    """Prefetch a fixed number of batches, with tf.data's autotuner off.

    Measured on 2 cores: with autotuning on, deleting a finished iterator sometimes blocked for
    3-5 s (its model thread); the fixed settings (one decode call per core, two batches ahead)
    keep the model busy just as well.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PREFETCH_BATCHES).with_options(options)


def image_dataset(
    paths: Sequence[str],
    *,
    size: int,
    batch_size: int,
    resize: str = "aspect",
    start: int = 0,
    decoder: str = "auto",
    workers: int | None = None,
    max_pixels: int | None = None,
):
    """Decode ``paths[start:]`` to ``size x size`` RGB in parallel; batches in source order.

    ``decoder="tfdata"`` decodes in ``tf.data`` threads (``tf.numpy_function``, one call per
    core, ``deterministic=True``); ``"threads"`` in a thread pool without TensorFlow; ``"pool"``
    uses featx's process pool (:func:`featx.data.pool.decode_images`) behind a prefetching
    generator; ``"auto"``: ``tfdata`` on the TensorFlow backend, else ``threads``.
    Images declaring more than ``max_pixels`` pixels are skipped undecoded.
    """
    decoder = resolve_decoder(decoder)
    paths = [str(p) for p in paths]
    if decoder == "threads":
        from featx.data.loader import iter_image_batches

        return _Batches(iter_image_batches, paths, size=size, batch_size=batch_size, resize=resize, start=start,
                        workers=workers, max_pixels=max_pixels)
    import tensorflow as tf

    blank = np.zeros((size, size, 3), np.uint8)

    if decoder == "pool":
        from featx.data.pool import decode_images

        def gen():
            for i, img, reason in decode_images(
                paths, size=size, resize=resize, start=start, workers=workers, max_pixels=max_pixels
            ):
                yield i, (blank if img is None else img), (reason or "").encode()

        sig = (
            tf.TensorSpec((), tf.int64),
            tf.TensorSpec((size, size, 3), tf.uint8),
            tf.TensorSpec((), tf.string),
        )
        ds = tf.data.Dataset.from_generator(gen, output_signature=sig)
        return _finish(ds.batch(batch_size))

    def decode(i):
        _, img, reason = decode_task((int(i), paths[int(i)], size, resize, max_pixels))
        return (blank, reason.encode()) if img is None else (img, b"")

    def load(i):
        img, reason = tf.numpy_function(decode, [i], [tf.uint8, tf.string], stateful=False)
        img.set_shape((size, size, 3))
        reason.set_shape(())
        return i, img, reason

    from featx.data.pool import default_workers

    ds = tf.data.Dataset.range(start, len(paths))
    ds = ds.map(load, num_parallel_calls=workers or default_workers(), deterministic=True)
    return _finish(ds.batch(batch_size))


def resolve_decoder(decoder: str) -> str:
    """``auto`` -> ``tfdata`` on the TensorFlow backend, ``threads`` elsewhere; ``tfdata``/``pool``
    under another backend: a one-line error naming TensorFlow."""
    from featx.runtime.backend import configured_backend, require_tensorflow

    if decoder not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}. Received: decoder={decoder!r}")
    if decoder == "auto":
        return "tfdata" if configured_backend() == "tensorflow" else "threads"
    if decoder in ("tfdata", "pool"):
        require_tensorflow(f"decoder {decoder!r} (tf.data)")
    return decoder


class _Batches:
    """A re-iterable view of a batch generator function (each ``iter`` starts a new pass)."""

    def __init__(self, fn, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __iter__(self):
        return iter(self.fn(*self.args, **self.kwargs))


def store_dataset(path: str, *, batch_size: int, start: int = 0, stop: int | None = None, offset: int = 0):
    """Batches of rows ``[start, stop)`` of an images HDF5, read as contiguous slabs (file opened inside).

    Indices are yielded relative to ``offset`` (a shard starting at row ``offset`` numbers its rows from 0).
    On the TensorFlow backend a ``tf.data`` pipeline; elsewhere a thread reading one batch ahead.
    """
    from featx.runtime.backend import configured_backend

    if configured_backend() != "tensorflow":
        from featx.data.loader import iter_store_batches

        return _Batches(iter_store_batches, path, batch_size=batch_size, start=start, stop=stop, offset=offset)
    import tensorflow as tf

    from featx.store import StoreReader

    with StoreReader(path, kind="images") as r:
        row_shape = r.row_shape

    def gen():
        with StoreReader(path, kind="images") as reader:
            i = start - offset
            for x, _ in reader.iter_batches(batch_size, start=start, stop=stop):
                n = len(x)
                yield np.arange(i, i + n, dtype=np.int64), x, np.full(n, b"", dtype=object)
                i += n

    sig = (
        tf.TensorSpec((None,), tf.int64),
        tf.TensorSpec((None, *row_shape), tf.uint8),
        tf.TensorSpec((None,), tf.string),
    )
    return _finish(tf.data.Dataset.from_generator(gen, output_signature=sig))

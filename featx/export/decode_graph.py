"""Encoded images -> ``(S, S, 3)`` uint8 inside a TensorFlow graph: the SavedModel's ``predict_bytes``.

It follows featx's own decode and resize rule (:mod:`featx.data.decode`) as closely as TensorFlow
ops allow:

* JPEG is decoded with libjpeg's accurate integer IDCT (Pillow's; TensorFlow's default, the fast
  one, differs by up to 4 levels) and at a reduced DCT scale (1/2, 1/4, 1/8) when both sides stay >= ``S``, as
  Pillow's ``draft`` does for featx (``tf.io.decode_jpeg(ratio=...)``, the same libjpeg scaling);
* PNG with transparency is composited on white, as featx does (float arithmetic, rounded);
* ``aspect``: the shorter side is scaled to ``S`` (sides rounded half to even, as Python's
  ``round``), then the centre ``S x S`` is cropped; ``plain``: stretched to ``S x S``;
* interpolation: area averaging when shrinking below half size, bilinear otherwise (OpenCV's
  ``INTER_AREA`` / ``INTER_LINEAR`` in featx; OpenCV computes in fixed point, TensorFlow in
  float, so resized pixels can differ by a level: measured max 1, mean 0.1 on JPEGs shrunk 1.25-9x);
* an image already ``S x S`` is not resized: it then matches featx's decode (same libjpeg/libpng).

Not reproduced: EXIF orientation (featx rotates; TensorFlow does not read EXIF), 16-bit PNG
(TensorFlow rescales, featx shifts by 8 bits), GIF transparency, formats TensorFlow cannot decode (TIFF, WebP), and
featx's per-file errors: one undecodable string fails the whole request.
"""

from __future__ import annotations


def decode_function(size: int, resize: str = "aspect"):
    """A function ``(N,) tf.string -> (N, size, size, 3) tf.uint8`` (call it inside a ``tf.function``)."""
    import tensorflow as tf

    size = int(size)
    S = tf.constant(size, tf.int32)

    def _jpeg(data):
        hw = tf.io.extract_jpeg_shape(data)[:2]
        k = tf.minimum(hw[0] // S, hw[1] // S)  # Pillow's draft: the largest of 8, 4, 2 that fits
        branch = tf.cast(k >= 2, tf.int32) + tf.cast(k >= 4, tf.int32) + tf.cast(k >= 8, tf.int32)
        return tf.switch_case(branch, [
            (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"))
            for r in (1, 2, 4, 8)
        ])

    def _gif(data):  # first frame (TensorFlow ignores GIF transparency)
        return tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)

    def _other(data):  # PNG, BMP
        img = tf.io.decode_image(data, channels=4, expand_animations=False, dtype=tf.uint8)
        rgb, alpha = tf.cast(img[..., :3], tf.float32), tf.cast(img[..., 3:], tf.float32) / 255.0
        return tf.cast(tf.round(rgb * alpha + 255.0 * (1.0 - alpha)), tf.uint8)  # on white, as featx

    def _resize(img, h, w):
        img = tf.cast(img, tf.float32)
        hf, wf, sf = tf.cast(h, tf.float64), tf.cast(w, tf.float64), tf.cast(size, tf.float64)
        if resize == "aspect":
            scale = tf.maximum(sf / wf, sf / hf)
            nh = tf.maximum(S, tf.cast(tf.round(hf * scale), tf.int32))
            nw = tf.maximum(S, tf.cast(tf.round(wf * scale), tf.int32))
        else:
            scale = tf.minimum(sf / wf, sf / hf)
            nh, nw = S, S
        out = tf.cond(
            scale < 0.5,
            lambda: tf.image.resize(img, tf.stack([nh, nw]), method="area"),
            lambda: tf.image.resize(img, tf.stack([nh, nw]), method="bilinear"),
        )
        top, left = (nh - S) // 2, (nw - S) // 2
        out = out[top:top + size, left:left + size, :]
        return tf.cast(tf.clip_by_value(tf.round(out), 0.0, 255.0), tf.uint8)

    def one(data):
        is_gif = tf.equal(tf.strings.substr(data, 0, 3), b"GIF")
        img = tf.cond(tf.io.is_jpeg(data), lambda: _jpeg(data),
                      lambda: tf.cond(is_gif, lambda: _gif(data), lambda: _other(data)))
        h, w = tf.shape(img)[0], tf.shape(img)[1]
        out = tf.cond(tf.logical_and(tf.equal(h, S), tf.equal(w, S)), lambda: img, lambda: _resize(img, h, w))
        return tf.ensure_shape(out, (size, size, 3))

    def decode(batch):
        return tf.map_fn(one, batch, fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8))

    return decode

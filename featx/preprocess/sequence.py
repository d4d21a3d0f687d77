"""HDF5 images store -> ``keras.utils.PyDataset`` batches: the training input without TensorFlow.

The JAX and PyTorch backends' counterpart of :mod:`featx.preprocess.pipeline`'s ``tf.data``
datasets, with the same batches: blocks of contiguous rows visited in the order
:meth:`featx.store.StoreReader.iter_batches` draws from ``seed + epoch`` (rows shuffled within
each block, every row once, the last partial batch kept), the epoch counted from
``initial_epoch`` so a resumed run sees the batches an uninterrupted one would. Each batch is
cast to float32, cropped (a random patch per image, drawn from ``(seed, epoch, batch)``, or the
center) and passed through the augmentation layers; Keras runs ``__getitem__`` on worker
threads ahead of the training step. Blocks are read whole (contiguous slabs, never fancy
indexing) and the two most recent are kept in memory.
"""

from __future__ import annotations

import math
import threading

import keras
import numpy as np

from featx.preprocess.crop import check_crop


def random_crop_numpy(images: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    """An independent random ``crop`` x ``crop`` window for each image of ``(B, H, W, C)``."""
    h, w = images.shape[1:3]
    check_crop((h, w), crop)
    if h == crop and w == crop:
        return images
    ys = rng.integers(0, h - crop + 1, len(images))
    xs = rng.integers(0, w - crop + 1, len(images))
    return np.stack([img[y : y + crop, x : x + crop] for img, y, x in zip(images, ys, xs)])


class StoreSequence(keras.utils.PyDataset):
    """``(x float32, y)`` batches of an images store, reshuffled every epoch (see the module doc).

    ``crop``: ``"random"`` (training), ``"center"`` or ``None``; ``classes``: one-hot labels;
    ``augment``: a Keras layer applied with ``training=True``; ``steps``: batches per epoch
    (default: all rows); ``labels=False`` yields ``x`` only.

    Data parallel (JAX ``keras.distribution``): ``shard=(index, count)`` keeps this process's
    contiguous part of every global batch (``multiworker``: each process feeds its own devices),
    and ``multiple`` trims each part to a multiple of the local device count, as sharding needs
    equal parts: the last partial batch of an epoch can lose up to ``count * multiple - 1`` rows.
    """

    def __init__(self, path, batch_size: int, input_size: int | None = None, *, shuffle: bool = False, seed: int = 0,
                 initial_epoch: int = 0, block_rows: int | None = None, crop: str | None = "center",
                 classes: int | None = None, augment=None, steps: int | None = None, labels: bool = True,
                 workers: int = 2, max_queue_size: int = 4, shard: tuple[int, int] | None = None,
                 multiple: int = 1):
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        from featx.store import StoreReader

        self.path, self.batch_size, self.input_size = str(path), int(batch_size), input_size
        self.shuffle, self.seed, self.epoch = bool(shuffle), int(seed), int(initial_epoch)
        self.crop, self.classes, self.augment, self.labels = crop, classes, augment, labels
        self.shard, self.multiple = shard, max(1, int(multiple))
        with StoreReader(self.path, kind="images") as r:
            self.rows = len(r)
            self.block = r._block_rows(self.batch_size, block_rows)
            self.label_values = np.asarray(r.labels)
        self.steps = int(steps) if steps else math.ceil(self.rows / self.batch_size)
        self._lock = threading.Lock()
        self._plan = None
        self._plan_epoch = None
        self._cache: dict[int, np.ndarray] = {}
        self._reader = None

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        """One pass (``steps`` batches); a shuffled sequence then moves on to the next epoch's order."""
        for i in range(self.steps):
            yield self[i]
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.epoch += 1

    # ----------------------------------------------------------------- the epoch's order
    def _order(self):
        """(visited block starts, the row permutation of each), drawn as ``iter_batches`` draws them."""
        if self._plan_epoch != self.epoch:
            starts = np.arange(0, self.rows, self.block)
            perms = []
            if self.shuffle:
                rng = np.random.default_rng(self.seed + self.epoch)
                starts = rng.permutation(starts)
                perms = [rng.permutation(min(int(b) + self.block, self.rows) - int(b)) for b in starts]
            else:
                perms = [None] * len(starts)
            offsets = np.cumsum([0] + [min(int(b) + self.block, self.rows) - int(b) for b in starts])
            self._plan, self._plan_epoch = (starts, perms, offsets), self.epoch
        return self._plan

    def _block_rows(self, b: int) -> np.ndarray:
        if b not in self._cache:
            if self._reader is None:
                from featx.store import StoreReader

                self._reader = StoreReader(self.path, kind="images")
            x = self._reader.read(b, min(b + self.block, self.rows))
            self._cache[b] = x
            while len(self._cache) > 3:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[b]

    def rows_of(self, i: int):
        """Pixels and labels of batch ``i`` of the current epoch, before cropping."""
        with self._lock:
            starts, perms, offsets = self._order()
            lo, hi = (i * self.batch_size) % max(1, self.rows), None
            hi = min(lo + self.batch_size, self.rows)
            xs, ys = [], []
            k = int(np.searchsorted(offsets, lo, side="right") - 1)
            while lo < hi:
                b, perm = int(starts[k]), perms[k]
                a, e = lo - offsets[k], min(hi, offsets[k + 1]) - offsets[k]
                rows = perm[a:e] if perm is not None else np.arange(a, e)
                xs.append(self._block_rows(b)[rows])
                ys.append(self.label_values[b + rows])
                lo += e - a
                k += 1
        return np.concatenate(xs), np.concatenate(ys)

    def __getitem__(self, i: int):
        x, y = self.rows_of(int(i))
        if self.shard is not None or self.multiple > 1:
            index, count = self.shard or (0, 1)
            per = len(x) // count
            per -= per % self.multiple
            x, y = x[index * per : (index + 1) * per], y[index * per : (index + 1) * per]
        x = x.astype(np.float32)
        if self.crop == "random":
            rng = np.random.default_rng((self.seed, self.epoch, int(i)))
            x = random_crop_numpy(x, self.input_size, rng)
        elif self.crop == "center" and self.input_size is not None:
            from featx.preprocess.crop import center_crop

            x = np.ascontiguousarray(center_crop(x, self.input_size))
        if self.augment is not None:
            x = keras.ops.convert_to_numpy(self.augment(x, training=True)).astype(np.float32)
        if not self.labels:
            return (x,)
        y = y.astype(np.int64)
        if self.classes is not None:
            y = np.eye(self.classes, dtype=np.float32)[y]
        return x, y

    def __del__(self):
        r = getattr(self, "_reader", None)
        if r is not None:
            r.close()

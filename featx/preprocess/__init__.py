"""Image preprocessing for the from-scratch path: mean subtraction, crops, augmentation, input pipeline.

* :mod:`~featx.preprocess.mean` -- the build's RGB means, as a Keras ``Normalization`` layer placed
  inside the exported model (so saved models take raw 0..255 RGB);
* :mod:`~featx.preprocess.crop` -- per-image random patch crops (training) and center crops;
* :mod:`~featx.preprocess.tencrop` -- the 10 windows (4 corners + center, and their mirrors);
* :mod:`~featx.preprocess.augment` -- Keras preprocessing layers (flip, rotation, zoom, shift);
* :mod:`~featx.preprocess.pipeline` -- HDF5 store -> ``tf.data`` batches for training and evaluation.

TensorFlow is imported lazily by the functions that need it.
"""

from featx.preprocess.mean import load_mean, mean_subtraction, read_mean_json, with_mean_subtraction

__all__ = ["load_mean", "mean_subtraction", "read_mean_json", "with_mean_subtraction"]

"""Process-level concerns of the deep-learning runtime, in one place.

* :mod:`~featx.runtime.accel`: GPUs, mixed precision and XLA decided once (:func:`resolve_accel`);
* :mod:`~featx.runtime.tf_logging`: TensorFlow's C++ start-up noise kept off stderr;
* :mod:`~featx.runtime.keras_files`: ``.keras`` files checked and loaded with featx's layers known.

Importing this package imports no TensorFlow.
"""

"""Process-level concerns of the deep-learning runtime, in one place.

* :mod:`~featx.runtime.backend`: the backend seam (TensorFlow, JAX or PyTorch under Keras 3):
  compile the forward pass, count GPUs, memory growth, tensors to NumPy, what needs TensorFlow;
* :mod:`~featx.runtime.accel`: GPUs, mixed precision and XLA-jit decided once (:func:`resolve_accel`);
* :mod:`~featx.runtime.tf_logging`: TensorFlow's C++ start-up noise kept off stderr;
* :mod:`~featx.runtime.keras_files`: ``.keras`` files checked and loaded with featx's layers known.

Importing this package imports neither Keras nor any backend.
"""

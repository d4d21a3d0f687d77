"""One writer and one runner per format: SavedModel, ONNX, TFLite, ``.keras``.

Every format has the same interface: ``images`` uint8 ``(N, S, S, 3)`` RGB in, ``probabilities``
float32 ``(N, C)`` out.

* ``savedmodel`` (folder ``savedmodel/``, Keras' ``ExportArchive``): signatures
  ``serving_default`` (the uint8 tensor) and ``predict_bytes`` (``(N,)`` encoded JPEG/PNG/BMP/GIF
  strings, decoded and resized in the graph: :mod:`featx.export.decode_graph`). Needs TensorFlow.
* ``onnx`` (``model.onnx``): ``tf2onnx`` on the model's frozen concrete function, input
  ``images``, output ``probabilities``, batch axis ``batch``; checked with ``onnxruntime``.
  Not Keras' own ``model.export(format="onnx")``: it calls ``tf2onnx.convert.from_function``,
  which lists every captured constant (a ``Normalization`` layer's mean, as in every ``featx
  train`` model) as an extra graph input, so the file cannot run; featx freezes the function first
  (``tf2onnx.tf_loader.from_function``) and converts the frozen graph (``from_graph_def``).
  TensorFlow's ``Erfc`` (Keras' exact GELU, e.g. in DINOv2) has no ONNX op: it becomes ``1 - Erf``.
* ``tflite`` (``model.tflite``): ``tf.lite.TFLiteConverter.from_saved_model`` on the
  ``serving_default`` signature, float32, TFLite built-in ops only (no Flex ops, so the LiteRT
  runtime alone runs it). Checked with LiteRT's interpreter (``ai-edge-litert``) when installed,
  else TensorFlow's deprecated ``tf.lite.Interpreter``.
* ``keras`` (``model.keras``): the Keras model, built-in layers only (loads with ``safe_mode``).
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path

import numpy as np

from featx.errors import FeatxError
from featx.runtime.backend import require_tensorflow

FORMATS = ("savedmodel", "onnx", "tflite", "keras")
DEFAULT_FORMATS = ("savedmodel", "keras")
#: file (or folder) of each format inside the export folder
FILES = {"savedmodel": "savedmodel", "onnx": "model.onnx", "tflite": "model.tflite", "keras": "model.keras"}
#: formats that need the TensorFlow backend
TENSORFLOW_ONLY = ("savedmodel", "tflite")
EXPORT_INSTALL = "pip install 'featx[export]'"
SIGNATURES = ("serving_default", "predict_bytes")


def parse_formats(formats) -> tuple[str, ...]:
    """``"savedmodel,onnx"`` or a list -> a tuple in :data:`FORMATS` order (one-line error otherwise)."""
    if formats is None:
        return DEFAULT_FORMATS
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [str(f).strip().lower() for f in items if str(f).strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise FeatxError(f"--format takes a comma-separated list of {', '.join(FORMATS)}. Received: {formats!r}")
    return tuple(f for f in FORMATS if f in names)


def check_available(formats) -> None:
    """Fail before any work when a format's packages are missing (one line naming the extra)."""
    if "onnx" in formats:
        missing = [m for m in ("tf2onnx", "onnx", "onnxruntime") if not _importable(m)]
        if missing:
            raise FeatxError(f"--format onnx needs {', '.join(missing)}: {EXPORT_INSTALL}")
    for fmt in TENSORFLOW_ONLY:
        if fmt in formats:
            require_tensorflow(f"--format {fmt}")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------ writers
def write_keras(model, path: Path) -> dict:
    model.save(path)
    return {}


def write_savedmodel(model, path: Path, *, size: int, resize: str) -> dict:
    import keras
    import tensorflow as tf

    from featx.export.decode_graph import decode_function
    from featx.export.network import INPUT_NAME, OUTPUT_NAME

    decode = decode_function(size, resize)

    def serve(images):
        return {OUTPUT_NAME: model(images, training=False)}

    def serve_bytes(images):
        return {OUTPUT_NAME: model(decode(images), training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve,
                         input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME)])
    archive.add_endpoint("predict_bytes", serve_bytes,
                         input_signature=[tf.TensorSpec((None,), tf.string, name=INPUT_NAME)])
    archive.write_out(str(path), verbose=False)
    return {"signatures": list(SIGNATURES)}


def write_onnx(model, path: Path, *, size: int) -> dict:
    """Convert with tf2onnx from the model's frozen concrete function (see the module docstring)."""
    import onnx
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    from featx.export.network import INPUT_NAME, OUTPUT_NAME

    with contextlib.suppress(ImportError, AttributeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its np.object probe warns on numpy 2
        from keras.src.export.tf2onnx_lib import patch_tf2onnx  # Keras' numpy-2 fixes for tf2onnx

        patch_tf2onnx()
    fn = tf.function(lambda images: model(images, training=False))
    concrete = fn.get_concrete_function(tf.TensorSpec((None, size, size, 3), tf.uint8, name=INPUT_NAME))
    # only the image is an input: the captured constants (e.g. a Normalization layer's mean) are
    # frozen into the graph, where tf2onnx's from_function / Keras' export would list them as inputs
    inputs, outputs = [concrete.inputs[0].name], [concrete.outputs[0].name]
    with _quiet_converter():
        frozen = tf_loader.from_function(concrete, inputs, outputs)
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen, name="featx_export", input_names=inputs, output_names=outputs,
            tensors_to_rename={inputs[0]: INPUT_NAME, outputs[0]: OUTPUT_NAME},
            custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
        )
    graph = proto.graph
    if [i.name for i in graph.input] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise FeatxError(
            f"ONNX conversion gave inputs {[i.name for i in graph.input]} and outputs "
            f"{[o.name for o in graph.output]}; expected [{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]"
        )
    for value in (graph.input[0], graph.output[0]):
        dim = value.type.tensor_type.shape.dim
        if dim and not dim[0].HasField("dim_value"):
            dim[0].dim_param = "batch"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=None)
    return {"opset": opset, "converter": f"tf2onnx {tf2onnx.__version__}"}


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx handler: ``Erfc(x)`` (exact GELU in Keras' TensorFlow ops, e.g. DINOv2's MLPs) has no
    ONNX op; it becomes ``1 - Erf(x)``."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    sub = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{node.name}_erfc"))
    ctx.replace_inputs(sub, [one.output[0], node.output[0]])
    return node


def write_tflite(savedmodel: Path, path: Path) -> dict:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel), signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        with _quiet_converter():
            blob = converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError and friends
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise FeatxError(f"TFLite conversion failed (built-in ops only): {first}") from None
    path.write_bytes(blob)
    return {"ops": "TFLITE_BUILTINS", "quantization": None}


@contextlib.contextmanager
def _quiet_converter():
    """tf2onnx and the TFLite converter warn about numpy 2 and deprecations: not the user's news."""
    import logging

    loggers = [logging.getLogger(n) for n in ("tf2onnx", "tensorflow", "absl")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:  # a failed conversion is reported by featx in one line
            lg.setLevel(logging.CRITICAL)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


# ------------------------------------------------------------------------------------ runners
def _batched(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
    out = [np.asarray(fn(images[i:i + batch_size]), dtype=np.float32) for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class Runner:
    """``runner(images uint8 (N, S, S, 3)) -> probabilities (N, C)`` of one written format."""

    def __init__(self, fmt: str, path: Path, *, batch_size: int = 32):
        if fmt not in FORMATS:
            raise FeatxError(f"unknown export format {fmt!r} (expected one of {', '.join(FORMATS)})")
        self.format, self.path, self.batch_size = fmt, Path(path), int(batch_size)
        self._fn = getattr(self, f"_load_{fmt}")()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        return _batched(self._fn, images, self.batch_size)

    def _load_keras(self):
        import keras

        model = keras.saving.load_model(self.path, compile=False, safe_mode=True)
        return lambda x: model(x, training=False)

    def _load_savedmodel(self):
        import tensorflow as tf

        from featx.export.network import INPUT_NAME, OUTPUT_NAME

        require_tensorflow("a SavedModel")
        loaded = tf.saved_model.load(str(self.path))
        serve = loaded.signatures["serving_default"]
        self._bytes = loaded.signatures.get("predict_bytes")
        self._loaded = loaded  # keeps the variables alive
        return lambda x: serve(**{INPUT_NAME: tf.constant(x)})[OUTPUT_NAME]

    def predict_bytes(self, blobs: list[bytes]) -> np.ndarray:
        """The SavedModel's ``predict_bytes`` signature on encoded images."""
        import tensorflow as tf

        from featx.export.network import INPUT_NAME, OUTPUT_NAME

        if self.format != "savedmodel" or self._bytes is None:
            raise FeatxError("predict_bytes is a signature of the SavedModel only")
        sig = self._bytes
        out = [np.asarray(sig(**{INPUT_NAME: tf.constant(blobs[i:i + self.batch_size])})[OUTPUT_NAME])
               for i in range(0, len(blobs), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def _load_onnx(self):
        try:
            import onnxruntime as ort
        except ImportError:
            raise FeatxError(f"running model.onnx needs onnxruntime: {EXPORT_INSTALL}") from None
        session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]

    def _load_tflite(self):
        from featx.export.network import INPUT_NAME, OUTPUT_NAME
        from featx.runtime.tf_logging import NOISE, filtered_stderr

        interpreter = tflite_interpreter(self.path)
        runner = interpreter.get_signature_runner("serving_default")
        self._interpreter = interpreter
        shape = tuple(int(d) for d in runner.get_input_details()[INPUT_NAME]["shape"][1:])
        # the first call prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on fd 2
        with filtered_stderr(drop=lambda line: line.startswith("INFO: Created TensorFlow Lite") or NOISE.match(line)):
            runner(**{INPUT_NAME: np.zeros((1, *shape), np.uint8)})
        return lambda x: runner(**{INPUT_NAME: x})[OUTPUT_NAME]


def tflite_interpreter(path: Path):
    """LiteRT's interpreter (``ai-edge-litert``) when installed, else TensorFlow's ``tf.lite.Interpreter``."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_path=str(path))


# ------------------------------------------------------------------------------------ hashes
def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a folder (each file's relative path and sha256, in sorted order)."""
    path = Path(path)
    if path.is_file():
        return _sha_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\0{_sha_file(p)}\n".encode())
    return h.hexdigest()


def _sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def size_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def versions() -> dict:
    """Versions of the libraries that wrote and checked the export."""
    import keras
    import tensorflow as tf

    from featx import __version__

    out = {"featx": __version__, "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__}
    for name in ("tf2onnx", "onnx", "onnxruntime", "ai_edge_litert"):
        with contextlib.suppress(Exception):
            mod = __import__(name)
            out[name.replace("_", "-")] = getattr(mod, "__version__", "installed")
    return out


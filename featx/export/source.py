"""What ``featx export`` exports: a ``featx fit`` classifier or a ``featx train``/``finetune`` run.

:func:`open_source` returns an :class:`ExportSource`: the pixels -> probabilities Keras network to
write, and ``reference``, featx's own path on the same pixels, that the export is checked against:

* a classifier (``clf.pkl`` / ``clf.skops``): loaded through :func:`featx.fit.load_classifier`
  (sha256 against the manifest before anything is deserialized, pickle vs skops from the bytes,
  manifest vs the classifier's own copy) -- a tampered file is refused before a layer is built;
  the backbone rebuilt from the manifest (:func:`featx.backbones.backbone_from_settings`: same
  weights, image size, preprocessing, file hashes checked); the reference is what ``featx
  predict`` computes: the backbone's compiled feature function, then ``predict_proba``;
* a run folder (``config.json`` + ``model.keras``): the trained model, which already maps raw
  0..255 RGB to probabilities (its mean subtraction is a layer); the reference is that model
  called on the same pixels, as ``featx evaluate`` calls it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from featx.errors import FeatxError


@dataclasses.dataclass
class ExportSource:
    """A model ready to export. ``details`` goes into ``export.json`` as ``source``."""

    kind: str  # "classifier" | "run"
    path: Path
    sha256: str
    label_names: list[str]
    image_size: int
    resize: str
    preprocessing: str
    network: object  # keras.Model: uint8 (N, S, S, 3) -> (N, C)
    reference: Callable[[np.ndarray], np.ndarray]
    details: dict


def open_source(path: str | os.PathLike, *, batch_size: int = 32) -> ExportSource:
    """A classifier file or a run folder (or the ``model.keras`` inside one) as an :class:`ExportSource`."""
    from featx.train import is_run_dir

    p = Path(path)
    if not p.exists():
        raise FeatxError(f"{p} does not exist (expected a featx fit classifier or a featx train/finetune run folder)")
    if p.is_dir():
        if not is_run_dir(p):
            raise FeatxError(f"{p} is a folder without config.json: not a featx train or finetune run")
        return _run(p, batch_size)
    if p.suffix.lower() == ".keras" and is_run_dir(p.parent):
        return _run(p.parent, batch_size)
    return _classifier(p, batch_size)


# ------------------------------------------------------------------------------------ classifier
def _classifier(path: Path, batch_size: int) -> ExportSource:
    from featx.backbones import backbone_from_settings
    from featx.export.network import classifier_network
    from featx.fit import dense_head, full_proba, head_activation, load_classifier

    estimator, manifest = load_classifier(path)  # refuses a tampered file before unpickling it
    settings = manifest.get("backbone")
    if not settings or not isinstance(settings, dict) or "name" not in settings:
        raise FeatxError(
            f"{path} was fit on features without a recorded backbone: export needs features from featx extract"
        )
    names = list(manifest["label_names"])
    backbone = backbone_from_settings(settings, mixed_precision=False)
    if backbone.dim != int(manifest.get("feature_dim", backbone.dim)):
        raise FeatxError(f"backbone gives {backbone.dim}-d features, the classifier expects {manifest['feature_dim']}")
    kernel, bias = dense_head(estimator, len(names), ovr="softmax")
    activation = head_activation(estimator)
    network = classifier_network(backbone, kernel, bias, activation)

    def reference(images: np.ndarray) -> np.ndarray:
        feats = backbone(images, batch_size=batch_size)
        return full_proba(estimator, feats, len(names)).astype(np.float32)

    resize = settings.get("resize") if settings.get("resize") in ("aspect", "plain") else "aspect"
    return ExportSource(
        kind="classifier", path=path.resolve(), sha256=manifest["sha256"], label_names=names,
        image_size=int(backbone.image_size), resize=resize,
        preprocessing=str(settings.get("preprocessing", "none")), network=network, reference=reference,
        details={
            "kind": "classifier", "path": str(path.resolve()), "file": path.name, "sha256": manifest["sha256"],
            "format": manifest.get("format"), "estimator": manifest.get("estimator"), "backbone": settings,
            "head": {"activation": activation, "classes": len(names), "feature_dim": int(kernel.shape[0])},
            "reference": "featx predict's path: the backbone's feature function, then the classifier's predict_proba",
        },
    )


# ------------------------------------------------------------------------------------ run folder
def _run(root: Path, batch_size: int) -> ExportSource:
    from featx.backbones.weights import sha256_file
    from featx.export.network import run_network
    from featx.runtime.keras_files import load_keras_model
    from featx.train import RunDir
    from featx.utils import read_json

    run = RunDir.of(root)
    try:
        cfg = read_json(run.config)
    except (OSError, ValueError) as e:
        raise FeatxError(f"cannot read {run.config}: {e}") from None
    if not isinstance(cfg, dict) or not str(cfg.get("schema", "")).startswith("featx."):
        raise FeatxError(f"{run.config} is not a featx run config")
    if not run.model.exists():
        at = run.backup_epoch()
        hint = f" (training stopped after epoch {at}: resume it with --resume)" if at is not None else ""
        raise FeatxError(f"{root} has no model.keras yet{hint}")
    names = cfg.get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FeatxError(f"{run.config} has no list of label_names")
    model = float32_model(load_keras_model(run.model, compile=False))
    if int(model.output_shape[-1]) != len(names):
        raise FeatxError(f"{run.model} predicts {model.output_shape[-1]} classes, {run.config} names {len(names)}")
    network = run_network(model)
    size = int(model.input_shape[1])

    listed = isinstance(model.input, list)  # call it with the structure its inputs were declared in

    def reference(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].astype(np.float32)
            out.append(np.asarray(model([x] if listed else x, training=False), dtype=np.float32))
        return np.concatenate(out)

    digest = sha256_file(run.model)
    return ExportSource(
        kind="run", path=root.resolve(), sha256=digest, label_names=list(names), image_size=size,
        resize=_run_resize(cfg), preprocessing="none (inside the model)", network=network, reference=reference,
        details={
            "kind": "run", "path": str(root.resolve()), "file": run.model.name, "sha256": digest,
            "schema": cfg.get("schema"), "model": cfg.get("model"), "mean_rgb": cfg.get("mean_rgb"),
            "reference": "the run's model.keras called on the same pixels (as featx evaluate does)",
        },
    )


def _run_resize(cfg: dict) -> str:
    """The resize mode of the images the run was trained on (``featx build --resize``), else aspect."""
    train = cfg.get("train")
    if train:
        try:
            from featx.store import open_store

            with open_store(train, kind="images") as r:
                mode = (r.config or {}).get("resize")
            if mode in ("aspect", "plain"):
                return mode
        except Exception:  # noqa: BLE001 - the training file may be gone: the default is documented
            pass
    return "aspect"


def float32_model(model):
    """``model`` itself when it computes in float32, else a float32 copy (same weights).

    A model trained with mixed precision keeps its ``mixed_float16`` layers when loaded; exports
    (ONNX in particular) and the parity check need float32 throughout.
    """
    if all(getattr(getattr(layer, "dtype_policy", None), "compute_dtype", "float32") == "float32"
           for layer in _all_layers(model)):
        return model
    config = _float32_config(model.get_config())
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def _float32_config(obj):
    if isinstance(obj, dict):
        if obj.get("class_name") == "DTypePolicy" and isinstance(obj.get("config"), dict):
            return {**obj, "config": {**obj["config"], "name": "float32"}}
        return {k: _float32_config(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_float32_config(v) for v in obj]
    return obj

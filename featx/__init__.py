"""featx: transfer learning and feature extraction on image datasets.

Two paths share one HDF5 store (:mod:`featx.store`)::

    import featx

    featx.build_images("photos/", "data/", size=64)                        # images -> data/{train,val,test}.h5
    featx.extract_features("data/train.h5", "feats/train.h5")              # backbone -> N x D features
    featx.fit_features("feats/train.h5", "clf.pkl")                        # tuned logistic regression
    featx.predict_images("clf.pkl", ["photo.jpg"])                         # labels + probabilities
    featx.export_model("clf.pkl", "served/", formats="savedmodel,onnx")     # pixels -> probabilities, checked
    featx.finetune_model(featx.FinetuneConfig(backbone="resnet50", train="data/train.h5", val="data/val.h5",
                                              head="clf.pkl", out="runs/ft"))  # LP-FT
    featx.train_model(featx.TrainConfig(model="minigooglenet", train="data/train.h5",
                                        val="data/val.h5", out="runs/mini"))
    featx.evaluate_model("runs/mini", "data/test.h5", ten_crop=True)       # rank-1 / rank-5
    featx.inspect_features(["feats/train.h5", "feats/test.h5"], "health/")  # label issues, duplicates, leakage
    featx.make_report(["runs/", "clf.metrics.json", "health/"], "report/")  # every method side by side
    featx.convert_features("feats/train.h5", "train.parquet")              # Parquet / .npy and back

One package per stage, named after its command (:mod:`featx.extract`, :mod:`featx.fit`,
:mod:`featx.train`, :mod:`featx.evaluate`, :mod:`featx.report`; :mod:`featx.build`,
:mod:`featx.predict` and :mod:`featx.demo` are single modules), over a shared foundation
(:mod:`featx.data`, :mod:`featx.store`, :mod:`featx.preprocess`, :mod:`featx.backbones`,
:mod:`featx.results`, :mod:`featx.runtime`). The names here load lazily: ``import featx``
imports neither TensorFlow nor scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

from featx.errors import FeatxError  # noqa: E402

#: public name -> (module, attribute); imported on first use
_LAZY = {
    "build_images": ("featx.build", "build"),
    "extract_features": ("featx.extract", "extract"),
    "ExtractConfig": ("featx.extract", "ExtractConfig"),
    "fit_features": ("featx.fit", "fit_features"),
    "fit_classifier": ("featx.fit", "fit_classifier"),
    "load_classifier": ("featx.fit", "load_classifier"),
    "predict_images": ("featx.predict", "predict_images"),
    "export_model": ("featx.export", "export_model"),
    "train_model": ("featx.train", "train"),
    "TrainConfig": ("featx.train", "TrainConfig"),
    "finetune_model": ("featx.finetune", "finetune"),
    "FinetuneConfig": ("featx.finetune", "FinetuneConfig"),
    "OptimConfig": ("featx.train", "OptimConfig"),
    "Augment": ("featx.preprocess.augment", "Augment"),
    "evaluate_model": ("featx.evaluate", "evaluate"),
    "make_report": ("featx.report", "make_report"),
    "inspect_features": ("featx.inspect", "inspect_features"),
    "run_demo": ("featx.demo", "run_demo"),
    "DemoConfig": ("featx.demo", "DemoConfig"),
    "open_store": ("featx.store", "open_store"),
    "build_backbone": ("featx.backbones", "build_backbone"),
    "list_backbones": ("featx.backbones", "list_backbones"),
    "convert_features": ("featx.convert", "convert"),
}

__all__ = ["FeatxError", "__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'featx' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

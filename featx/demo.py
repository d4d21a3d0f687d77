"""``featx demo``: both paths end to end on a dataset that ships with the install, then the report.

Steps (each one resumable, so an interrupted demo continues where it stopped when rerun):

1. write scikit-learn's digits as PNG files in class folders (``DIR/images``);
2. ``build``: images -> ``DIR/data/s{S}/{train,val,test}.h5`` (one store per stored size needed);
3. ``extract``: ResNet50 features of the train and test splits -> ``DIR/features``;
   ImageNet weights when cached or downloadable, otherwise random-init weights with a loud warning
   (in the output and in the report: those features are not pretrained);
4. ``fit``: logistic regression, C by cross-validation along a warm-started path -> ``DIR/models/<backbone>_lr.pkl``;
5. ``train``: a short MiniGoogLeNet run (and AlexNet / DeeperGoogLeNet when asked) -> ``DIR/runs``;
   with ``finetune=True`` (``featx demo --finetune``) also ``featx finetune``: the backbone of step 3
   fine-tuned from the classifier of step 4 (LP-FT) -> ``DIR/runs/finetune`` (off by default: ResNet50
   training on a 2-core CPU takes minutes an epoch, beyond the demo's 6-minute budget);
6. ``evaluate``: every method on the same test split (scratch models with ten-crop);
7. ``report``: ``DIR/report/report.html``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from featx.backbones.registry import DEFAULT_BACKBONE
from featx.errors import FeatxError, WeightsUnavailableError

#: scratch models the demo trains unless told otherwise (``-m``); any registered model works
DEFAULT_MODELS = ("minigooglenet",)
#: the demo trains each scratch model at its canonical input side, capped at this (digits are
#: small: MiniGoogLeNet 32, DeeperGoogLeNet 64, AlexNet 64 instead of 227; its Flatten head works at
#: any side >= 57), never below the model's minimum
DEMO_MAX_INPUT = 64
#: stored images are this much larger than the input, so training takes random patch crops and
#: evaluation can take ten crops
CROP_MARGIN = 8


def demo_input_size(model: str) -> int:
    """The input side the demo trains ``model`` at (from the scratch model registry)."""
    from scratch_models import get_model_info

    info = get_model_info(model)
    return max(info.min_input_size, min(info.input_size or DEMO_MAX_INPUT, DEMO_MAX_INPUT))


@dataclass
class DemoConfig:
    out: str = "featx-demo"
    models: tuple[str, ...] = DEFAULT_MODELS
    epochs: int = 8
    batch_size: int = 32
    per_class: int | None = None  # None: all ~180 digits per class
    image_px: int = 64  # side of the written PNGs
    backbone: str = DEFAULT_BACKBONE
    weights: str = "auto"  # auto: imagenet when available, else none (with a warning)
    extract_size: int = 96  # backbone input side (ResNet50's canonical is 224: slow on a CPU)
    extract_batch: int = 32
    lr: float = 0.01
    finetune: bool = False  # add featx finetune (LP-FT from the step-4 classifier)
    finetune_epochs: int = 1
    seed: int = 42
    overwrite: bool = False
    progress: bool | None = None


@dataclass
class DemoResult:
    out: Path
    report_html: Path
    table: list[dict]
    best: str | None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)


def _check(cfg: DemoConfig) -> None:
    from scratch_models import MODELS

    for m in cfg.models:
        MODELS.get_info(m)  # RegistryError (one line, lists the choices) for an unknown name
    if cfg.epochs < 1:
        raise FeatxError(f"--epochs must be >= 1. Received: {cfg.epochs}")
    if cfg.per_class is not None and cfg.per_class < 10:
        raise FeatxError(f"--per-class must be at least 10 (splits need a few images per class). Received: {cfg.per_class}")


def run_demo(cfg: DemoConfig, say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo; returns where the report is and the comparison table."""
    _check(cfg)
    from featx.build import build
    from featx.data.datasets import write_digits

    t_start = time.perf_counter()
    out = Path(cfg.out)
    steps: dict[str, float] = {}
    n_steps = 7
    warnings: list[str] = []

    def step(i: int, title: str):
        say(f"[{i}/{n_steps}] {title}")
        return time.perf_counter()

    t = step(1, f"writing scikit-learn digits as images to {out / 'images'}")
    images = write_digits(out / "images", per_class=cfg.per_class, size=cfg.image_px, seed=cfg.seed)
    steps["images"] = time.perf_counter() - t

    t = step(2, "featx build: images -> HDF5 (uint8, stratified train/val/test)")
    # the features are extracted from the default model's store, whichever models are trained
    sizes = sorted({demo_input_size(m) + CROP_MARGIN for m in (*cfg.models, DEFAULT_MODELS[0])})
    stores: dict[int, Path] = {}
    for s in sizes:
        res = build(images, out / "data" / f"s{s}", size=s, val=0.1, test=0.2, seed=cfg.seed,
                    overwrite=cfg.overwrite, progress=cfg.progress)
        stores[s] = out / "data" / f"s{s}"
        say(f"      {res.summary()}")
    steps["build"] = time.perf_counter() - t
    base = stores[demo_input_size(DEFAULT_MODELS[0]) + CROP_MARGIN]

    t = step(3, f"featx extract: {cfg.backbone} features at {cfg.extract_size}px")
    feats = _extract(cfg, base, out / "features", say, warn, warnings)
    steps["extract"] = time.perf_counter() - t

    t = step(4, "featx fit: logistic regression, C by cross-validation (warm-started path)")
    from featx.fit import fit_features

    clf = out / "models" / f"{cfg.backbone}_lr.pkl"
    if clf.exists() and not cfg.overwrite:
        say(f"      kept {clf} (already fitted)")
    else:
        fit_res, _ = fit_features(feats["train"], clf, test=feats["test"], overwrite=True, seed=cfg.seed)
        say(f"      best {fit_res.best_params}; held-out rank-1 {fit_res.scores['rank1']:.4f}; "
            f"fit {fit_res.fit_seconds:.1f}s -> {clf}")
    steps["fit"] = time.perf_counter() - t

    t = step(5, f"featx train: {', '.join(cfg.models)} for {cfg.epochs} epochs"
             + (f"; featx finetune: {cfg.backbone} (LP-FT), {cfg.finetune_epochs} epoch(s)" if cfg.finetune else ""))
    from featx.preprocess.augment import Augment
    from featx.train import OptimConfig, TrainConfig, train

    runs = {}
    ten_crop = {}
    for m in cfg.models:
        store = stores[demo_input_size(m) + CROP_MARGIN]
        tc = TrainConfig(
            model=m, train=str(store / "train.h5"), val=str(store / "val.h5"), out=str(out / "runs" / m),
            input_size=demo_input_size(m), epochs=cfg.epochs, batch_size=cfg.batch_size,
            optim=OptimConfig(optimizer="sgd", lr=cfg.lr), seed=cfg.seed,
            # digits are not mirror-symmetric: no flips, gentler rotation
            augment=Augment(flip=False, rotation=10.0),
        )
        # an interrupted demo's run continues at its last epoch (a finished one is kept)
        resume = not cfg.overwrite and (out / "runs" / m / "config.json").exists()
        res = train(tc, resume=resume, overwrite=cfg.overwrite, verbose=0 if cfg.progress is False else 2)
        runs[m] = (res.run_dir, store)
        last = ", ".join(f"{k} {v:.3f}" for k, v in res.last.items() if isinstance(v, int | float))
        how = " (kept)" if res.reused else (f" (resumed after epoch {res.resumed_from})" if res.resumed_from else "")
        say(f"      {m}: {res.epochs} epochs in {res.train_seconds:.0f}s{how}; {last}")
    if cfg.finetune:
        from featx.finetune import FinetuneConfig, finetune

        weights = _extracted_weights(feats["train"])
        fc = FinetuneConfig(
            backbone=cfg.backbone, weights=weights, image_size=cfg.extract_size, train=str(base / "train.h5"),
            val=str(base / "val.h5"), out=str(out / "runs" / "finetune"), head=str(clf), epochs=cfg.finetune_epochs,
            batch_size=cfg.batch_size, seed=cfg.seed, augment=Augment(enabled=False),
        )
        resume = not cfg.overwrite and (out / "runs" / "finetune" / "config.json").exists()
        res = finetune(fc, resume=resume, overwrite=cfg.overwrite, verbose=0 if cfg.progress is False else 2)
        runs["finetune"] = (res.run_dir, base)
        ten_crop["finetune"] = False  # whole stored images, resized inside the network: no room for crops
        say(f"      {cfg.backbone} fine-tuned (LP-FT): {res.epochs} epoch(s) in {res.train_seconds:.0f}s"
            f"{' (kept)' if res.reused else ''}; val accuracy {res.start.get('val_accuracy', 0):.3f} at the start")
    steps["train"] = time.perf_counter() - t

    t = step(6, "featx evaluate: every method on the same test split (scratch models: ten-crop too)")
    from featx.evaluate import evaluate

    ev = evaluate(clf, feats["test"])  # -> models/<name>.eval.json
    _say_eval(say, ev.record)
    for name, (run_dir, store) in runs.items():
        ev = evaluate(run_dir, store / "test.h5", ten_crop=ten_crop.get(name, True), progress=cfg.progress)
        _say_eval(say, ev.record)
    steps["evaluate"] = time.perf_counter() - t

    t = step(7, "featx report")
    from featx.report import make_report

    rep = make_report([out / "models", out / "runs"], out / "report")
    steps["report"] = time.perf_counter() - t
    total = time.perf_counter() - t_start
    return DemoResult(out, rep.html, rep.table, rep.best, rep.warnings, total, steps)


def _say_eval(say, rec: dict) -> None:
    s = rec.get("single_crop") or {}
    ten = rec.get("ten_crop")
    line = f"      {rec.get('method')}: rank-1 {s.get('rank1', 0):.4f}"
    if s.get("rank5") is not None:
        line += f", rank-5 {s['rank5']:.4f}"
    if ten:
        line += f"; ten-crop rank-1 {ten['rank1']:.4f}"
    say(line)


def _extract(cfg: DemoConfig, data: Path, out: Path, say, warn, warnings: list[str]) -> dict[str, Path]:
    from featx.extract import extract

    weights = cfg.weights
    if weights == "auto":
        weights = "imagenet"
    paths = {}
    for split in ("train", "test"):
        target = out / f"{split}.h5"
        try:
            res = extract(data / f"{split}.h5", target, backbone=cfg.backbone, weights=weights,
                          image_size=cfg.extract_size, batch_size=cfg.extract_batch,
                          overwrite=cfg.overwrite, progress=cfg.progress)
        except WeightsUnavailableError as e:
            if cfg.weights != "auto":
                raise
            msg = (f"ImageNet weights for {cfg.backbone} are unavailable ({e}); using RANDOM-INIT weights: "
                   "these features are NOT pretrained and the transfer scores below say nothing about transfer learning")
            warn(msg)
            warnings.append(msg)
            weights = "none"
            res = extract(data / f"{split}.h5", target, backbone=cfg.backbone, weights=weights,
                          image_size=cfg.extract_size, batch_size=cfg.extract_batch,
                          overwrite=cfg.overwrite, progress=cfg.progress)
        speed = "" if res.reused else f" ({res.images_per_second:.1f} images/s)"
        say(f"      {split}: {res.summary()}{speed}")
        paths[split] = target
    return paths


def _extracted_weights(features) -> str:
    """The weights the demo's features were extracted with (imagenet, or none after the fallback)."""
    from featx.store import feature_settings, open_store

    with open_store(features, kind="features") as r:
        return str(feature_settings(r.attrs).get("weights") or "imagenet")


def default_out() -> str:
    return os.environ.get("FEATX_DEMO_DIR", "featx-demo")

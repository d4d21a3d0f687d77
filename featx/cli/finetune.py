"""``featx finetune BACKBONE --train TRAIN.h5 [--val VAL.h5] [--head CLF] -o RUN_DIR``.

Option names match :class:`featx.finetune.FinetuneConfig`'s fields, so a library error naming a
parameter is shown with its flag.
"""

from __future__ import annotations

import click

from featx.backbones.registry import HUB_PREFIX, KERAS_PREFIX, backbone_names
from featx.cli.options import (
    flag_names,
    overwrite_option,
    parameter_errors,
    progress_option,
    run_augment_options,
    run_data_options,
    run_device_options,
    run_resume_options,
    run_saving_options,
    say,
    seed_option,
    warn,
)
from featx.constants import DEFAULT_WEIGHTS
from featx.finetune import BATCH_SIZE, FINETUNE_EPOCHS, FINETUNE_LR, HEAD_EPOCHS, HEAD_LR, WARMUP


def _backbone(ctx, param, value):
    if value.lower() in backbone_names() or value.lower().startswith((KERAS_PREFIX, HUB_PREFIX)):
        return value
    raise click.BadParameter(
        f"choose one of {', '.join(backbone_names())}, {HUB_PREFIX}PRESET or {KERAS_PREFIX}PATH[:LAYER]. Received: {value!r}")


@click.command("finetune")
@click.argument("backbone", callback=_backbone, metavar=f"NAME|{HUB_PREFIX}PRESET|{KERAS_PREFIX}PATH[:LAYER]")
@run_data_options
@click.option("--weights", "-w", default=DEFAULT_WEIGHTS, metavar="imagenet|none|FILE",
              help="Backbone weights, as in featx extract (keras: models use their own).")
@click.option("--image-size", type=click.IntRange(min=8), default=None,
              help="Backbone input side, as in featx extract [default: the backbone's].")
@click.option("--input-size", type=click.IntRange(min=1), default=None,
              help="Network input side; larger stored images are cropped (random in training, center for validation) "
                   "[default: the stored side: whole images, resized inside the network as featx extract resizes them].")
@click.option("--head", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Start the head from this featx fit classifier (LP-FT; fit on features of the same backbone settings).")
@click.option("--head-epochs", type=click.IntRange(min=0), default=None,
              help=f"Phase 1: epochs of the head alone, backbone frozen [default: 0 with --head, else {HEAD_EPOCHS}].")
@click.option("--head-lr", type=click.FloatRange(min=0, min_open=True), default=HEAD_LR, help="Phase 1 learning rate (AdamW).")
@click.option("--epochs", type=click.IntRange(min=1), default=FINETUNE_EPOCHS, help="Phase 2: fine-tuning epochs.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=FINETUNE_LR,
              help="Phase 2 peak learning rate (AdamW; per replica), reached after --warmup, then cosine decay to 0.")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=WARMUP,
              help="Fraction of phase 2's steps spent warming the learning rate up linearly from 0.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="AdamW's decoupled weight decay [default: Keras' 0.004].")
@click.option("--unfreeze", default="all", metavar="all|N",
              help="Phase 2 trains the top N backbone blocks (named per backbone in the registry, e.g. resnet50's "
                   "conv2_block1 ... conv5_block3; keras: models count layers with weights) or all. BatchNorm stays "
                   "frozen in inference mode.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0, help="Dropout before the head.")
@run_device_options(batch_size=BATCH_SIZE, scaled="the learning rates")
@run_augment_options(label_smoothing=0.0, overrides=False)
@run_saving_options(keep_help="model.keras is the best of phase 2's start and epochs by val accuracy (needs --val), or the last epoch.")
@run_resume_options(tensorboard_help="Write TensorBoard logs (both phases, one timeline) here: tensorboard --logdir DIR.")
@seed_option
@overwrite_option
@progress_option
@click.pass_context
def command(ctx, backbone, train, val, out, weights, image_size, input_size, head, head_epochs, head_lr, epochs, lr,
            warmup, weight_decay, unfreeze, dropout, batch_size, strategy, lr_scaling, cpu_devices, label_smoothing,
            augment, flip, keep, checkpoint_every, mixed_precision, xla, tensorboard, resume, seed, overwrite, progress):
    """Fine-tune a pretrained BACKBONE on TRAIN.h5 into RUN_DIR: linear probe first, then the backbone.

    Phase 1 trains a new Dense softmax head with the backbone frozen; with --head CLF (a featx fit
    classifier on features of the same backbone settings) the head starts from it instead (LP-FT),
    its scaler folded into the Dense weights. Phase 2 unfreezes the top --unfreeze blocks (BatchNorm
    stays frozen, in inference mode) and trains with AdamW, warmup and cosine decay.

    RUN_DIR has the layout of a featx train run: model.keras (raw 0..255 RGB in), history.json,
    curves.png, config.json (both phases), so featx evaluate, featx report and featx extract
    --backbone keras:RUN_DIR/model.keras work on it. A killed run continues with --resume.
    """
    from featx.finetune import FinetuneConfig, finetune
    from featx.preprocess.augment import Augment

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    with parameter_errors(ctx):
        cfg = FinetuneConfig(
            backbone=backbone, train=train, val=val, out=out, weights=weights, image_size=image_size,
            input_size=input_size, head=head, head_epochs=head_epochs, head_lr=head_lr, epochs=epochs, lr=lr,
            warmup=warmup, weight_decay=weight_decay, unfreeze=unfreeze, dropout=dropout, batch_size=batch_size,
            strategy=strategy, lr_scaling=lr_scaling, cpu_devices=cpu_devices, label_smoothing=label_smoothing,
            augment=Augment.preset_named(augment, flip=flip), keep=keep, checkpoint_every=checkpoint_every,
            mixed_precision=mixed_precision, xla=xla, tensorboard=tensorboard, seed=seed,
        )
    verbose = 2 if progress is False else (1 if progress else "auto")
    with flag_names(ctx):
        r = finetune(cfg, resume=resume, overwrite=overwrite, verbose=verbose, on_warning=warn)
    if r.reused:
        say(f"already complete, kept: {r.run_dir} ({r.epochs} epochs)")
    else:
        how = f", resumed after epoch {r.resumed_from}" if r.resumed_from is not None else ""
        say(f"fine-tuned {backbone} ({r.params:,} parameters, {r.trainable_params:,} trainable in phase 2, {r.device}): "
            f"{r.head_epochs} head + {r.epochs - r.head_epochs} fine-tuning epochs in {r.train_seconds:.1f}s{how}")
    if r.head_check:
        say(f"  head from {head}: network = classifier on {r.head_check['images']} images "
            f"(max |diff| {r.head_check['max_abs_diff']:.1e})")
    if r.start.get("val_accuracy") is not None:
        say(f"  val accuracy before fine-tuning {r.start['val_accuracy']:.4f}")
    parts = [f"{k} {r.last[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if r.last.get(k) is not None]
    if parts:
        say("  last epoch: " + ", ".join(parts))
    if r.kept_epoch is not None and r.kept_epoch != r.epochs:
        say(f"  kept epoch {r.kept_epoch}" + (" (the start point: no fine-tuning epoch beat it)"
                                              if r.kept_epoch == r.head_epochs else " (best val_accuracy)"))
    say(f"  model    {r.model_path}")
    say(f"  history  {r.history_path}   curves {r.curves_path}")
    say(f"  config   {r.config_path}")
    say(f"next: featx evaluate {r.run_dir} --data TEST.h5 --ten-crop")

"""``featx train MODEL --train TRAIN.h5 [--val VAL.h5] -o RUN_DIR``.

Option names match :class:`featx.train.config.TrainConfig`'s fields (and :class:`OptimConfig`'s,
:class:`Augment`'s), so a library error naming a parameter is shown with its flag.
"""

from __future__ import annotations

import click

from featx.cli.options import (
    LazyHelpOption,
    RegistryChoice,
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
    scratch_models_registry,
    seed_option,
    warn,
)
from featx.train import LABEL_SMOOTHING, OPTIMIZERS, PRECISE_BN_IMAGES, SCHEDULES


def _input_size_help() -> str:
    sizes = ", ".join(f"{i.name} {i.input_size}" for i in scratch_models_registry().list_infos())
    return f"Network input side; larger stored images are cropped [default: the model's: {sizes}]."


def _drops(ctx, param, value):
    if not value:
        return ()
    try:
        return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"comma-separated epoch numbers, e.g. 20,40. Received: {value!r}") from None


@click.command("train")
@click.argument("model", type=RegistryChoice(scratch_models_registry))
@run_data_options
@click.option("--input-size", cls=LazyHelpOption, type=click.IntRange(min=1), default=None, help_fn=_input_size_help)
@click.option("--epochs", type=click.IntRange(min=1), default=10, help="Total epochs.")
@run_device_options(batch_size=64)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="sgd", help="SGD with momentum, Adam or AdamW.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, help="Initial learning rate (per replica).")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9, help="SGD momentum.")
@click.option("--nesterov", is_flag=True, help="Nesterov momentum (SGD).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=None,
              help="AdamW's decoupled weight decay [default: Keras' 0.004].")
@click.option("--schedule", type=click.Choice(SCHEDULES), default="poly",
              help="poly: polynomial decay to 0 (--power 1 = linear); step: x--drop-factor at --drops; "
                   "cosine: cosine decay to 0 after --warmup; constant.")
@click.option("--warmup", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="With --schedule cosine: fraction of the steps spent warming up linearly from 0.")
@click.option("--power", type=click.FloatRange(min=0, min_open=True), default=1.0, help="Polynomial decay power.")
@click.option("--drops", callback=_drops, default=None, help="Epochs where --schedule step drops the rate, e.g. 20,40.")
@click.option("--drop-factor", "factor", type=click.FloatRange(0, 1, min_open=True), default=0.1,
              help="Step schedule factor.")
@click.option("--l2", type=click.FloatRange(min=0), default=None, help="L2 weight decay on kernels [default: the model's own].")
@run_augment_options(label_smoothing=LABEL_SMOOTHING, overrides=True)
@click.option("--precise-bn-images", type=click.IntRange(min=0), default=PRECISE_BN_IMAGES,
              help="Recompute BatchNorm statistics on this many training images before each validation "
                   "and at the end (precise BN); 0: off.")
@run_saving_options(keep_help="model.keras is the epoch with the best val accuracy (needs --val), or the last epoch.")
@click.option("--mean", type=click.Path(dir_okay=False, exists=True), default=None,
              help="mean.json to subtract [default: the train file's means].")
@run_resume_options(tensorboard_help="Write TensorBoard logs (loss, accuracy, learning rate per epoch) here: tensorboard --logdir DIR.")
@click.option("--from-checkpoint", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Start from this checkpoint (.keras), e.g. with a new --lr (the book's restart workflow).")
@click.option("--initial-epoch", type=click.IntRange(min=0), default=0, help="Epoch the checkpoint ends (with --from-checkpoint).")
@seed_option
@overwrite_option
@progress_option
@click.pass_context
def command(ctx, model, train, val, out, input_size, epochs, batch_size, strategy, lr_scaling, cpu_devices, optimizer,
            lr, momentum, nesterov, weight_decay, schedule, warmup, power, drops, factor, l2, label_smoothing, augment, flip,
            rotation, zoom, shift, precise_bn_images, keep, checkpoint_every, mean, mixed_precision, xla, resume,
            from_checkpoint, initial_epoch, tensorboard, seed, overwrite, progress):
    """Train a scratch MODEL on TRAIN.h5 (and report on VAL.h5 every epoch) into RUN_DIR.

    RUN_DIR gets model.keras (raw 0..255 RGB in: mean subtraction is its first layer),
    history.json and curves.png (updated every epoch), config.json, mean.json and
    checkpoints/. A killed run continues with the same command plus --resume. To restart
    from a checkpoint with a new learning rate:
    --from-checkpoint RUN_DIR/checkpoints/epoch_020.keras --initial-epoch 20 --lr 1e-3.
    """
    from featx.preprocess.augment import Augment
    from featx.train import OptimConfig, TrainConfig
    from featx.train import train as run_training

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    with parameter_errors(ctx):
        optim = OptimConfig(optimizer=optimizer, lr=lr, momentum=momentum, nesterov=nesterov, schedule=schedule,
                            power=power, drops=drops, factor=factor, weight_decay=weight_decay, warmup=warmup)
        aug = Augment.preset_named(augment, flip=flip, rotation=rotation, zoom=zoom, shift=shift)
        cfg = TrainConfig(
            model=model, train=train, val=val, out=out, input_size=input_size, epochs=epochs,
            batch_size=batch_size, optim=optim, lr_scaling=lr_scaling, l2=l2, augment=aug,
            label_smoothing=label_smoothing, precise_bn_images=precise_bn_images, keep=keep,
            checkpoint_every=checkpoint_every, seed=seed, strategy=strategy, cpu_devices=cpu_devices,
            mixed_precision=mixed_precision, xla=xla, mean=mean, from_checkpoint=from_checkpoint,
            initial_epoch=initial_epoch, tensorboard=tensorboard,
        )
    verbose = 2 if progress is False else (1 if progress else "auto")
    with flag_names(ctx):
        result = run_training(cfg, resume=resume, overwrite=overwrite, verbose=verbose, on_warning=warn)
    if result.reused:
        say(f"already complete, kept: {result.run_dir} ({result.epochs} epochs)")
    else:
        how = f"resumed after epoch {result.resumed_from}" if result.resumed_from is not None else (
            f"from epoch {result.initial_epoch}" if result.initial_epoch else "from scratch")
        where = result.device if result.replicas == 1 else f"{result.strategy}, {result.replicas} replicas"
        say(f"trained {model} ({result.params:,} parameters, {where}) to epoch {result.epochs}, {how}, "
            f"in {result.train_seconds:.1f}s")
    last = result.last
    parts = [f"{k} {last[k]:.4f}" for k in ("loss", "accuracy", "val_loss", "val_accuracy") if last.get(k) is not None]
    if parts:
        say("  last epoch: " + ", ".join(parts))
    if result.kept_epoch is not None and result.kept_epoch != result.epochs:
        say(f"  kept epoch {result.kept_epoch} (best val_accuracy)")
    say(f"  model    {result.model_path}")
    say(f"  history  {result.history_path}   curves {result.curves_path}")
    say(f"  config   {result.config_path}")
    say(f"next: featx evaluate {result.run_dir} --data TEST.h5 --ten-crop")

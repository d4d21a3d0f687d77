"""Option bundles shared by several subcommands, registry-driven choices, and output helpers."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager

import click

from featx.constants import DEFAULT_MAX_PIXELS, RESIZE_MODES
from featx.errors import FeatxError, ParameterError


def overwrite_option(f):
    return click.option(
        "--overwrite", is_flag=True, help="Replace finished outputs (and unfinished runs) made with other parameters."
    )(f)


def seed_option(f):
    return click.option("--seed", type=int, default=42, help="Random seed (splits, shuffles).")(f)


def workers_option(f):
    return click.option(
        "--workers", "-j", type=click.IntRange(min=1), default=None, help="Decode processes [default: all cores]."
    )(f)


def resize_option(f):
    return click.option(
        "--resize",
        type=click.Choice(RESIZE_MODES),
        default="aspect",
        help="aspect: shorter side to size then center crop; plain: stretch to size.",
    )(f)


def max_pixels_option(f):
    return click.option(
        "--max-pixels",
        type=click.IntRange(min=1),
        default=DEFAULT_MAX_PIXELS,
        help="Skip (never decode) images whose header declares more pixels than this (decompression bombs).",
    )(f)


def progress_option(f):
    return click.option(
        "--progress/--no-progress", default=None, help="Progress bars [default: on in a terminal]."
    )(f)


# ---------------------------------------------------------------- training runs (train, finetune)
def _stack(f, options):
    for option in reversed(options):
        f = option(f)
    return f


#: ``--strategy`` help, the same for every training command
STRATEGY_HELP = ("auto: TensorFlow mirrors over more than one GPU, JAX is data parallel over its local devices "
                 "(keras.distribution), else one device; one; mirrored: tf.distribute.MirroredStrategy (TensorFlow "
                 "backend); multiworker: keras.distribution across processes (JAX backend; refused under TensorFlow, "
                 "keras-team/keras#20585).")


def run_data_options(f):
    """``--train``, ``--val`` and ``-o/--out`` of a training run."""
    return _stack(f, [
        click.option("--train", type=click.Path(dir_okay=False), required=True,
                     help="Images file (featx build, or book format)."),
        click.option("--val", type=click.Path(dir_okay=False), default=None, help="Validation images file."),
        click.option("-o", "--out", type=click.Path(file_okay=False), required=True, help="Run folder."),
    ])


def run_device_options(*, batch_size: int, scaled: str = "--lr"):
    """``--batch-size``, ``--strategy``, ``--lr-scaling``, ``--cpu-devices``, ``--mixed-precision``, ``--xla``."""
    from featx.train import STRATEGIES

    return lambda f: _stack(f, [
        click.option("--batch-size", type=click.IntRange(min=1), default=batch_size, help="Batch size per replica (device)."),
        click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", help=STRATEGY_HELP),
        click.option("--lr-scaling/--no-lr-scaling", default=True, help=f"Multiply {scaled} by the number of replicas."),
        click.option("--cpu-devices", type=click.IntRange(min=1), default=None,
                     help="Testing aid: split the CPU into N logical devices (e.g. to try --strategy mirrored without GPUs)."),
        click.option("--mixed-precision/--no-mixed-precision", default=None,
                     help="Half-precision compute: bfloat16 where every GPU has it (compute capability 8.0+), "
                          "else float16 [default: on with a GPU]."),
        click.option("--xla/--no-xla", default=None, help="XLA-compile the training step [default: on with a GPU]."),
    ])


def run_saving_options(*, keep_help: str):
    """``--keep`` and ``--checkpoint-every``."""
    from featx.train import KEEP

    return lambda f: _stack(f, [
        click.option("--keep", type=click.Choice(KEEP), default="best", help=keep_help),
        click.option("--checkpoint-every", type=click.IntRange(min=1), default=5,
                     help="Save checkpoints/epoch_NNN.keras every N epochs."),
    ])


def run_augment_options(*, label_smoothing: float, overrides: bool):
    """``--label-smoothing``, ``--augment`` and ``--flip`` (with ``overrides``: ``--rotation``, ``--zoom``, ``--shift``)."""
    from featx.preprocess.augment import DEFAULT_PRESET, PRESETS

    options = [
        click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=label_smoothing,
                     help="Label smoothing of the cross-entropy loss."),
        click.option("--augment", type=click.Choice(tuple(PRESETS)), default=DEFAULT_PRESET,
                     help="none; light: small shifts (1/16 of the side) + flips; book: flips, 20 degree rotation, "
                          "0.15 zoom, 0.1 shifts."),
        click.option("--flip/--no-flip", default=None, help="Random horizontal flips [default: the --augment preset's]."),
    ]
    if overrides:
        options += [
            click.option("--rotation", type=click.FloatRange(0, 180, max_open=True), default=None,
                         help="Random rotation, +/- degrees [default: the preset's]."),
            click.option("--zoom", type=click.FloatRange(0, 1, max_open=True), default=None,
                         help="Random zoom, +/- fraction [default: the preset's]."),
            click.option("--shift", type=click.FloatRange(0, 1, max_open=True), default=None,
                         help="Random shift, +/- fraction of the side [default: the preset's]."),
        ]
    return lambda f: _stack(f, options)


def run_resume_options(*, tensorboard_help: str):
    """``--tensorboard`` and ``--resume``."""
    return lambda f: _stack(f, [
        click.option("--tensorboard", type=click.Path(file_okay=False), default=None, help=tensorboard_help),
        click.option("--resume", is_flag=True, help="Continue a killed run in RUN_DIR where it stopped (same options)."),
    ])


class RegistryChoice(click.Choice):
    """The names in a :class:`featx.registry.Registry`, read when parsed or shown (so entries
    registered after import, by plugins or tests, are accepted and listed).

    ``registry`` is a function returning the registry, so importing the CLI module stays cheap.
    """

    def __init__(self, registry: Callable):
        self._registry = registry
        super().__init__([], case_sensitive=False)

    @property
    def choices(self):
        return tuple(self._registry().list_names())

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it; the registry is the source
        pass


class LazyHelpOption(click.Option):
    """An option whose help text is computed when shown (``help_fn``), e.g. from a registry."""

    def __init__(self, *args, help_fn: Callable[[], str], **kwargs):
        super().__init__(*args, **kwargs)
        self._help_fn = help_fn

    def get_help_record(self, ctx):
        self.help = self._help_fn()
        return super().get_help_record(ctx)


def scratch_models_registry():
    """The scratch model registry (``scratch_models.MODELS``; importing it does not import Keras)."""
    import scratch_models

    return scratch_models.MODELS


def say(msg: str) -> None:
    click.echo(msg)


def warn(msg: str) -> None:
    click.secho(f"WARNING: {msg}", fg="yellow", err=True)


# ------------------------------------------------------------------ library parameter names -> flags
def flag_of(ctx: click.Context, param: str) -> str | None:
    """The flag of the command's option whose name is ``param`` (the library's name), or None."""
    for p in ctx.command.params:
        if p.name == param and isinstance(p, click.Option):
            return max(p.opts, key=len)
    return None


def with_flags(ctx: click.Context, message: str) -> str:
    """``message`` with each backquoted parameter name (`input_size`) replaced by its flag."""
    return re.sub(r"`(\w+)`", lambda m: flag_of(ctx, m.group(1)) or m.group(1), message)


@contextmanager
def parameter_errors(ctx: click.Context):
    """Turn a :class:`ParameterError` raised while the options are checked into a usage error
    naming the option's flag (exit 2)."""
    try:
        yield
    except ParameterError as e:
        flag, msg = flag_of(ctx, e.param), with_flags(ctx, str(e))
        if flag:
            raise click.BadParameter(msg, ctx=ctx, param_hint=f"'{flag}'") from None
        raise click.UsageError(msg, ctx) from None


@contextmanager
def flag_names(ctx: click.Context):
    """Show library errors raised while a command runs with flag names (one line, exit 1)."""
    try:
        yield
    except ParameterError as e:
        flag, msg = flag_of(ctx, e.param), with_flags(ctx, str(e))
        raise click.ClickException(f"{flag}: {msg}" if flag else msg) from None
    except FeatxError as e:
        raise click.ClickException(with_flags(ctx, str(e))) from None

"""Option bundles shared by several subcommands, and output helpers."""

from __future__ import annotations

import click

from featx.data.decode import DEFAULT_MAX_PIXELS, RESIZE_MODES


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


def say(msg: str) -> None:
    click.echo(msg)


def warn(msg: str) -> None:
    click.secho(f"WARNING: {msg}", fg="yellow", err=True)

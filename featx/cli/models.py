"""``featx models``: the backbones and scratch architectures featx knows (read from the registries,
without importing TensorFlow)."""

from __future__ import annotations

import click

from featx.cli.options import scratch_models_registry


def _params(n: int | None) -> str:
    return f"{n / 1e6:6.2f}M params" if n else " " * 14


@click.command("models")
def command():
    """List registered feature backbones and from-scratch architectures."""
    from featx.backbones.registry import (
        BACKBONES,
        DEFAULT_BACKBONE,
        HUB_PREFIX,
        HUB_PRESETS,
        KERAS_PREFIX,
    )

    click.echo("Backbones (featx extract --backbone NAME):")
    for info in BACKBONES.list_infos():
        default = " [default]" if info.name == DEFAULT_BACKBONE else ""
        click.echo(f"  {info.name:<18} {info.dim:>5}-d  input {info.default_size:>3}px  {info.description}{default}")
    click.echo(f"  {KERAS_PREFIX + 'PATH[:LAYER]':<18} {'':7}  {'any input':<11}  any saved Keras model, cut at LAYER")
    click.echo('KerasHub presets (featx extract --backbone hub:PRESET; pip install "featx[hub]"; any other '
               "KerasHub image preset, kaggle:// or hf:// handle or preset folder works too):")
    for hub in HUB_PRESETS:
        name = HUB_PREFIX + hub.name
        click.echo(f"  {name:<30} {hub.dim:>5}-d  input {hub.default_size:>3}px  {hub.description}")
    click.echo("Scratch models (featx train MODEL):")
    infos = scratch_models_registry().list_infos()
    for info in infos:
        dim = f"{info.feature_dim:>5}-d" if info.feature_dim else " " * 7
        click.echo(f"  {info.name:<18} {dim}  input {info.input_size:>3}px  {_params(info.params)}  {info.description}")
    if not infos:
        click.echo("  (none registered)")

"""``featx models``: the backbones and scratch architectures featx knows."""

from __future__ import annotations

import click


@click.command("models")
def command():
    """List registered feature backbones and from-scratch architectures."""
    try:
        from featx.backbones import list_backbones
    except ImportError:
        list_backbones = None
    click.echo("Backbones (featx extract --backbone):")
    if list_backbones is not None:
        for info in list_backbones():
            click.echo(f"  {info.name:<16} {info.dim:>5}-d  input {info.default_size}px  {info.description}")
        click.echo("  keras:PATH[:LAYER]      any saved Keras model, cut at LAYER")
    else:
        click.echo("  (none registered)")
    click.echo("Scratch models (featx train MODEL):")
    try:
        import scratch_models
    except ImportError:
        scratch_models = None
    names = scratch_models.list_models() if scratch_models is not None else []
    for name in names:
        info = scratch_models.get_model_info(name)
        click.echo(f"  {name:<16} input {info.input_size}px  {info.description}")
    if not names:
        click.echo("  (none registered)")

"""``featx extract SRC -o OUT.h5``."""

from __future__ import annotations

import click

from featx.backbones.registry import DEFAULT_BACKBONE, KERAS_PREFIX, backbone_names
from featx.cli.options import (
    LazyHelpOption,
    max_pixels_option,
    overwrite_option,
    progress_option,
    resize_option,
    say,
    warn,
)

#: Skipped files printed one per line; the rest are counted (all are in the file's attrs).
SHOW_SKIPPED = 20


def _backbone(ctx, param, value):
    if value.lower() in backbone_names() or value.lower().startswith(KERAS_PREFIX):
        return value
    raise click.BadParameter(f"choose one of {', '.join(backbone_names())} or {KERAS_PREFIX}PATH[:LAYER]. Received: {value!r}")


@click.command("extract")
@click.argument("src", type=click.Path(exists=True, path_type=str))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="Features file to write (e.g. feats/train.h5).")
@click.option("--backbone", "-b", cls=LazyHelpOption, default=DEFAULT_BACKBONE, callback=_backbone,
              metavar=f"NAME|{KERAS_PREFIX}PATH[:LAYER]", help_fn=lambda: (
                  f"Feature extractor: {', '.join(backbone_names())}, or a saved Keras model cut at LAYER "
                  "(see featx models)."))
@click.option("--weights", "-w", default="imagenet", metavar="imagenet|none|FILE",
              help="imagenet (Keras' download and cache), none (random init: smoke tests) or a local weights file.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Images per forward pass.")
@click.option("--image-size", type=click.IntRange(min=8), default=None, help="Input side in pixels [default: the backbone's].")
@resize_option
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="float16 compute [default: on with a GPU].")
@click.option("--xla/--no-xla", default=None, help="XLA-compile the forward pass [default: on with a GPU].")
@max_pixels_option
@overwrite_option
@progress_option
def command(
    src, out, backbone, weights, batch_size, image_size, resize, mixed_precision, xla, max_pixels, overwrite, progress
):
    """Run a pretrained backbone over SRC and write one feature row per image to OUT.

    SRC is an image folder (class subfolders, 'label.N.jpg' names, train/val/test folders) or a CSV
    of path,label -- the discovery and decoding rules of featx build -- or an images .h5 written by
    featx build. Rows keep the source order with their labels and paths; files that cannot be
    decoded are skipped and listed. An interrupted run resumes when rerun with the same options.
    """
    from featx.extract import extract
    from featx.outputs import check_not_input

    check_not_input(out, src)  # `extract d/train.h5 -o d/train.h5 --overwrite` must not delete its source
    result = extract(
        src, out, backbone=backbone, weights=weights, image_size=image_size, batch_size=batch_size,
        resize=resize, mixed_precision=mixed_precision, xla=xla, overwrite=overwrite, progress=progress,
        max_pixels=max_pixels,
    )
    say(result.summary())
    for s in result.skipped[:SHOW_SKIPPED]:
        say(f"  skipped {s['path']}: {s['reason']}")
    if len(result.skipped) > SHOW_SKIPPED:
        say(f"  ... and {len(result.skipped) - SHOW_SKIPPED} more (all listed in the 'skipped' attr of {result.out_path})")
    if not result.reused:
        mode = ", ".join(m for m, on in (("mixed precision", result.mixed_precision), ("XLA", result.xla)) if on) or "float32"
        say(f"  {result.images_per_second:.1f} images/s ({mode}, batch {batch_size}); {result.seconds:.1f}s in all")
    if result.settings.get("weights") == "none":
        warn("weights=none: random, untrained features (fine for smoke tests, useless for real classification)")

"""``featx extract SRC -o OUT.h5``."""

from __future__ import annotations

import click

from featx.backbones.registry import DEFAULT_BACKBONE, HUB_PREFIX, KERAS_PREFIX, backbone_names
from featx.cli.options import (
    LazyHelpOption,
    max_pixels_option,
    overwrite_option,
    progress_option,
    resize_option,
    say,
    warn,
)
from featx.constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_EXTRACT_BATCH_SIZE,
    DEFAULT_WEIGHTS,
    ENGINES,
)

#: Skipped files printed one per line; the rest are counted (all are in the file's attrs).
SHOW_SKIPPED = 20


def _backbone(ctx, param, value):
    if value.lower() in backbone_names() or value.lower().startswith((KERAS_PREFIX, HUB_PREFIX)):
        return value
    raise click.BadParameter(
        f"choose one of {', '.join(backbone_names())}, {HUB_PREFIX}PRESET or {KERAS_PREFIX}PATH[:LAYER]. Received: {value!r}"
    )


@click.command("extract")
@click.argument("src", type=click.Path(exists=True, path_type=str))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True, help="Features file to write (e.g. feats/train.h5).")
@click.option("--backbone", "-b", cls=LazyHelpOption, default=DEFAULT_BACKBONE, callback=_backbone,
              metavar=f"NAME|{HUB_PREFIX}PRESET|{KERAS_PREFIX}PATH[:LAYER]", help_fn=lambda: (
                  f"Feature extractor: {', '.join(backbone_names())}; a KerasHub preset ({HUB_PREFIX}dinov2_small, "
                  f"{HUB_PREFIX}clip_vit_base_patch16...: pip install \"featx[hub]\"); or a saved Keras model cut at "
                  "LAYER (see featx models)."))
@click.option("--weights", "-w", default=DEFAULT_WEIGHTS, metavar="imagenet|none|FILE",
              help="imagenet (Keras' download and cache), none (random init: smoke tests) or a local weights file; "
                   "for hub: presets, imagenet means the preset's own weights.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_EXTRACT_BATCH_SIZE, help="Images per forward pass.")
@click.option("--image-size", type=click.IntRange(min=8), default=None, help="Input side in pixels [default: the backbone's].")
@resize_option
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="Half-precision compute: bfloat16 where every GPU has it (compute capability 8.0+), else float16 [default: on with a GPU].")
@click.option("--xla/--no-xla", default=None, help="XLA-compile the forward pass [default: on with a GPU].")
@max_pixels_option
@click.option("--engine", type=click.Choice(ENGINES), default=ENGINES[0], show_default=True,
              help="local: this process; ray: shards on a pool of Ray actors (pip install \"featx[ray]\").")
@click.option("--address", default=None, metavar="ADDRESS",
              help="Ray cluster to join with --engine ray: auto or ray://HOST:10001 [default: start a local Ray].")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_CONNECT_TIMEOUT,
              help="Seconds to wait for the --address to answer before giving up.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Extractor replicas for --engine ray [default: one per GPU, or 1 without GPUs].")
@click.option("--shard-rows", type=click.IntRange(min=1), default=None,
              help="Rows per shard (the unit of work and resume) [default: a few minutes of work; "
                   "--engine local writes the output directly unless this is given].")
@overwrite_option
@progress_option
def command(src, out, backbone, weights, batch_size, image_size, resize, mixed_precision, xla, max_pixels, engine,
            address, connect_timeout, workers, shard_rows, overwrite, progress):
    """Run a pretrained backbone over SRC and write one feature row per image to OUT.

    SRC is an image folder (class subfolders, 'label.N.jpg' names, train/val/test folders) or a CSV
    of path,label -- the discovery and decoding rules of featx build -- or an images .h5 written by
    featx build. Rows keep the source order with their labels and paths; files that cannot be
    decoded are skipped and listed. An interrupted run resumes when rerun with the same options.

    With --engine ray (or --shard-rows), the rows are cut into shards written to OUT.shards/ by a
    pool of workers (Ray actors, one GPU each where there are GPUs), then merged into OUT in source
    order: the same file a local run writes. A rerun redoes only unfinished shards.
    """
    from featx.extract import extract
    from featx.utils import printable_name
    if address is not None and engine != "ray":
        raise click.UsageError("--address applies to --engine ray")
    result = extract(
        src, out, backbone=backbone, weights=weights, image_size=image_size, batch_size=batch_size,
        resize=resize, mixed_precision=mixed_precision, xla=xla, overwrite=overwrite, progress=progress,
        max_pixels=max_pixels, engine=engine, address=address, connect_timeout=connect_timeout, workers=workers,
        shard_rows=shard_rows,
    )
    say(result.summary())
    for s in result.skipped[:SHOW_SKIPPED]:
        say(f"  skipped {printable_name(s['path'])}: {s['reason']}")
    if len(result.skipped) > SHOW_SKIPPED:
        say(f"  ... and {len(result.skipped) - SHOW_SKIPPED} more (all listed in the 'skipped' attr of {result.out_path})")
    if not result.reused:
        mode = ", ".join(m for m, on in (("mixed precision", result.mixed_precision), ("XLA", result.xla)) if on) or "float32"
        where = f"{result.engine}, {result.workers} worker(s)" if result.shards else result.engine
        say(f"  {result.images_per_second:.1f} images/s ({mode}, batch {batch_size}, {where}); {result.seconds:.1f}s in all")
    if result.settings.get("weights") == "none":
        warn("weights=none: random, untrained features (fine for smoke tests, useless for real classification)")

"""``featx build SRC -o OUT_DIR``."""

from __future__ import annotations

import click

from featx.cli.options import (
    max_pixels_option,
    overwrite_option,
    progress_option,
    resize_option,
    say,
    seed_option,
    workers_option,
)


def _split_size(ctx, param, value):
    if value < 0 or (value >= 1 and value != int(value)):
        raise click.BadParameter(f"must be a fraction in [0, 1) or a whole count. Received: {value}")
    return value


@click.command("build")
@click.argument("src", type=click.Path(exists=True, path_type=str))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--size", type=click.IntRange(min=8), default=256, help="Stored image side (pixels).")
@resize_option
@click.option("--val", type=float, default=0.1, callback=_split_size, help="Validation split: fraction or count.")
@click.option("--test", type=float, default=0.1, callback=_split_size, help="Test split: fraction or count.")
@seed_option
@workers_option
@max_pixels_option
@overwrite_option
@progress_option
def command(src, out_dir, size, resize, val, test, seed, workers, max_pixels, overwrite, progress):
    """Write the labelled images in SRC to OUT_DIR/{train,val,test}.h5 (RGB uint8).

    SRC is a folder with one subfolder per class, a flat folder of 'label.N.jpg' files, a folder
    with train/ val/ test/ subfolders (kept as splits), or a CSV of path,label. Also writes
    mean.json (RGB means of train) and build.json (counts, skipped files, timing). An interrupted
    build resumes when rerun with the same options.
    """
    from featx.build import build

    result = build(
        src, out_dir, size=size, resize=resize, val=val, test=test, seed=seed,
        workers=workers, overwrite=overwrite, progress=progress, max_pixels=max_pixels,
    )
    if result.reused:
        say(f"already complete, kept: {', '.join(result.reused)}")
    say(result.summary())
    for split, path in result.files.items():
        say(f"  {split:<5} {path}")
    say(f"  mean  {result.out_dir / 'mean.json'}   report {result.out_dir / 'build.json'}")
    say(f"  {result.images_per_second:.1f} images/s over {result.seconds:.1f}s")

"""``featx predict CLF IMAGES_OR_FOLDERS...``."""

from __future__ import annotations

import click

from featx.cli.options import max_pixels_option, say


@click.command("predict")
@click.argument("classifier", metavar="MODEL", type=click.Path(exists=True, path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--top-k", "-k", type=click.IntRange(min=1), default=3, help="Best labels listed per image.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the table as CSV.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Images per forward pass.")
@max_pixels_option
def command(classifier, inputs, top_k, csv_path, batch_size, max_pixels):
    """Classify images with MODEL: a classifier written by featx fit, or a featx export folder.

    A classifier: runs the backbone recorded in its manifest, then the classifier; its sha256 is
    checked before it is loaded. An export folder: runs its model (nothing is unpickled, so it is
    safe on a model someone sent you; its sha256 is checked against export.json). INPUTS are image
    files and folders (searched recursively). A file that cannot be decoded is reported on its
    line; the others are classified.

    \b
    Exit codes: 0 when at least one image was classified (the failures are listed),
    1 when no input could be classified (the table and --csv are still written), 2 for usage errors.
    """
    from pathlib import Path

    from featx.predict import predict_images, write_csv
    from featx.utils import escape_name

    if csv_path:  # before the backbone is built: never over an input, and somewhere writable
        from featx.outputs import check_not_input, check_writable

        sides = ()
        if not Path(classifier).is_dir():
            from featx.fit import side_paths

            sides = side_paths(classifier)
        check_not_input(csv_path, classifier, *sides, *inputs)
        check_writable(csv_path)
    rows, manifest = predict_images(classifier, list(inputs), top_k=top_k, batch_size=batch_size, max_pixels=max_pixels)
    k = max(1, min(top_k, len(manifest["label_names"])))
    names = [escape_name(r.path) for r in rows]  # a name that is not UTF-8 as in the CSV: bad\xff.jpg
    width = min(60, max([len(n) for n in names] + [4]))
    say(f"{'path':<{width}}  {'label':<16} {'prob':>6}  top-{k}")
    for r, name in zip(rows, names):
        shown = name if len(name) <= width else "..." + name[-(width - 3):]
        if r.error:
            say(f"{shown:<{width}}  ERROR: {r.error}")
            continue
        tops = ", ".join(f"{n} {p:.3f}" for n, p in r.top_k)
        say(f"{shown:<{width}}  {r.label:<16} {r.probability:6.3f}  {tops}")
    bad = sum(1 for r in rows if r.error)
    what = f"{manifest['format']} model of {classifier}" if "export" in manifest else f"backbone {manifest['backbone']['name']}"
    say(f"{len(rows) - bad} classified, {bad} failed ({what})")
    if csv_path:
        say(f"wrote {write_csv(csv_path, rows, k)}")
    if bad == len(rows):
        raise click.ClickException(f"no input could be classified ({bad} failed; see the lines above)")

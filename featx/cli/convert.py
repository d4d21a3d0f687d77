"""``featx convert SRC -o OUT``: features between featx HDF5 and Parquet / NumPy."""

from __future__ import annotations

import click

from featx.cli.options import overwrite_option, progress_option, say

SHOW_SKIPPED = 20


@click.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=str))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False), required=True,
              help="File to write: .parquet, .npy (with STEM.labels.csv and STEM.featx.json beside it) or .h5.")
@click.option("--split", default=None, metavar="NAME",
              help="To Parquet/NumPy: the rows' split [default: featx build's split the features came from, "
                   "else none]. From Parquet/NumPy: keep only the rows of this split [default: all rows].")
@click.option("--row-group-rows", type=click.IntRange(min=1), default=None,
              help="Rows per Parquet row group and per read/write slab [default: about 64 MiB of embeddings].")
@click.option("--embedding-column", default="embedding", help="From Parquet: the column of embeddings (lists of floats).")
@click.option("--label-column", default=None, metavar="NAME",
              help="From Parquet: the label column, names or numbers [default: label_name, else label].")
@click.option("--path-column", default="path", help="From Parquet: the column naming each row's image (rows are row_N without it).")
@overwrite_option
@progress_option
def command(src, out, split, row_group_rows, embedding_column, label_column, path_column, overwrite, progress):
    """Convert features SRC to OUT; the formats come from the suffixes.

    \b
    featx convert feats/train.h5 -o train.parquet   # path, label, label_name, split, embedding
    featx convert feats/train.h5 -o train.npy       # + train.labels.csv, train.featx.json
    featx convert emb.parquet -o feats/emb.h5       # embeddings made elsewhere -> featx fit / inspect / report

    Parquet is written in row groups (memory bounded by one group), with the features file's settings
    (backbone, label names, config) in the schema metadata, so converting back gives the same file
    contents. Rows with a missing or malformed embedding are skipped and listed.
    """
    from featx.convert import convert

    result = convert(src, out, split=split, row_group_rows=row_group_rows, embedding_column=embedding_column,
                     label_column=label_column, path_column=path_column, overwrite=overwrite, progress=progress)
    say(result.summary())
    for s in result.skipped[:SHOW_SKIPPED]:
        say(f"  skipped {s['path']}: {s['reason']}")
    if len(result.skipped) > SHOW_SKIPPED:
        say(f"  ... and {len(result.skipped) - SHOW_SKIPPED} more (all listed in the 'skipped' attr of {result.out})")

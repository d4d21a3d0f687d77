"""``featx export SOURCE -o OUT_DIR [--format savedmodel,onnx,tflite,keras]``."""

from __future__ import annotations

import click

from featx.cli.options import overwrite_option, progress_option, say
from featx.export import (
    DEFAULT_FORMATS,
    DEFAULT_TFLITE_TOLERANCE,
    DEFAULT_TOLERANCE,
    EXPORT_INSTALL,
    FORMATS,
)


def _formats(ctx, param, value):
    from featx.errors import FeatxError
    from featx.export import parse_formats

    try:
        return parse_formats(value)
    except FeatxError as e:
        raise click.BadParameter(str(e).removeprefix("--format ")) from None


def _tolerance(ctx, param, value):
    if not 0 < value < 1:
        raise click.BadParameter(f"must be between 0 and 1. Received: {value}")
    return value


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@click.command("export")
@click.argument("source", type=click.Path(exists=True, path_type=str))
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True,
              help="Export folder to write (model files, labels.txt, export.json).")
@click.option("--format", "formats", default=",".join(DEFAULT_FORMATS), callback=_formats, metavar="F1,F2,...",
              help=f"Formats, comma-separated: {', '.join(FORMATS)} (onnx needs {EXPORT_INSTALL}).")
@click.option("--check-images", "check_images", multiple=True, type=click.Path(exists=True, path_type=str),
              help="Image files or folders for the parity check (repeatable) [default: a synthetic batch].")
@click.option("--tolerance", type=float, default=DEFAULT_TOLERANCE, callback=_tolerance,
              help="Largest max abs difference of probabilities from featx's own path (float32 formats).")
@click.option("--tflite-tolerance", type=float, default=DEFAULT_TFLITE_TOLERANCE, callback=_tolerance,
              help="The same bound for TFLite (its own kernels sum in another order).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, help="Images per forward pass in the check.")
@overwrite_option
@progress_option
def command(source, out, formats, check_images, tolerance, tflite_tolerance, batch_size, overwrite, progress):
    """Export SOURCE as one model from pixels to probabilities, checked against featx predict.

    SOURCE is a classifier written by featx fit (its backbone, same weights and preprocessing, with
    the scaler and logistic regression folded into a Dense layer; its sha256 and manifest are
    checked first) or a featx train / finetune run folder. The model takes uint8 RGB images
    (N, S, S, 3) and returns class probabilities (N, C). Every written format is run on sample
    images and compared with featx's own path; above the tolerance the export fails and nothing
    is left at OUT. The SavedModel also has a predict_bytes signature (encoded JPEG/PNG strings).
    """
    from featx.export import export_model

    result = export_model(source, out, formats=formats, check_images=list(check_images), tolerance=tolerance,
                          tflite_tolerance=tflite_tolerance, batch_size=batch_size, overwrite=overwrite,
                          progress=progress)
    rec = result.record
    parity = rec["parity"]
    size = rec["input"]["image_size"]
    say(f"wrote {result.out_dir}/ in {rec['seconds']['total']:.1f} s: uint8 RGB ({size}x{size}) -> "
        f"{len(rec['label_names'])} class probabilities")
    say(f"parity with featx's own path on {parity['sample']} (max abs difference of probabilities):")
    for fmt in result.formats:
        entry, check = rec["formats"][fmt], parity[fmt]
        say(f"  {entry['path']:<14} {_size(entry['size_bytes']):>9}  {check['max_abs_diff']:.1e} "
            f"(tolerance {check['tolerance']:g}), top-1 agreement {check['top1_agreement']:.0%}")
    if "predict_bytes" in parity:
        pb = parity["predict_bytes"]
        line = f"  predict_bytes  PNG at {size}px {pb['max_abs_diff']:.1e}"
        files = pb.get("check_image_files")
        if files and "top1_agreement" in files:
            line += f"; the check images' own bytes: top-1 agreement {files['top1_agreement']:.0%} ({files['rows']} files)"
        elif files:
            line += f"; the check images' own bytes failed: {files['error']}"
        say(line)
    if parity.get("skipped_check_images"):
        say(f"  skipped {len(parity['skipped_check_images'])} check images that featx cannot decode")
    say(f"labels: {result.out_dir / 'labels.txt'}; record: {result.out_dir / 'export.json'}; "
        f"classify with: featx predict {result.out_dir} IMAGES...")

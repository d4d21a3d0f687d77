"""The ``featx`` command: one click group, one module per subcommand, imported only when used.

Lazy loading keeps start-up fast (``featx fit --help`` does not import TensorFlow). Every
subcommand runs inside :meth:`FeatxGroup.invoke`, which turns library errors into one line on
stderr and exit code 1: no tracebacks (set ``FEATX_DEBUG=1`` to see them). Ctrl-C and SIGTERM
(:mod:`featx.runtime.signals`) end every command with one line and exit 130 / 143.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from featx import __version__
from featx.backbones.registry import DEFAULT_BACKBONE
from featx.errors import FeatxError

#: subcommand name -> (module, short help shown by ``featx --help`` without importing it)
COMMANDS = {
    "build": ("featx.cli.build", "Write labelled images to HDF5 (train/val/test, uint8, resumable)."),
    "extract": ("featx.cli.extract", f"Extract backbone features ({DEFAULT_BACKBONE} by default) to HDF5."),
    "fit": ("featx.cli.fit", "Tune a logistic regression on features; export the classifier."),
    "predict": ("featx.cli.predict", "Classify images with a classifier or an export folder."),
    "export": ("featx.cli.export", "Export a classifier or run as one model (SavedModel, ONNX, TFLite)."),
    "train": ("featx.cli.train", "Train a scratch model (see featx models) from HDF5."),
    "finetune": ("featx.cli.finetune", "Fine-tune a pretrained backbone: linear probe first (LP-FT), then the backbone."),
    "evaluate": ("featx.cli.evaluate", "Rank-1/rank-5 accuracy, single-crop and ten-crop."),
    "inspect": ("featx.cli.inspect", "Label errors, near-duplicates and train/test leakage in features."),
    "report": ("featx.cli.report", "Compare every method side by side (Markdown, HTML, JSON)."),
    "demo": ("featx.cli.demo", "Run both paths end to end on a bundled dataset."),
    "models": ("featx.cli.models", "List backbones and scratch architectures."),
    "convert": ("featx.cli.convert", "Features to Parquet / NumPy and back (HDF5 <-> .parquet, .npy)."),
}


class FeatxGroup(click.Group):
    def list_commands(self, ctx):
        return [name for name, (mod, _) in COMMANDS.items() if importlib.util.find_spec(mod) is not None]

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, _ = COMMANDS[name]
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:
                return None
            raise
        return mod.command

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FeatxError as e:
            raise click.ClickException(str(e)) from None
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (featx.runtime.signals): one line, 130 / 143
            from featx.runtime.signals import exit_code

            how = "add --resume to the same command" if ctx.invoked_subcommand in ("train", "finetune") else "rerun the same command"
            what = f"terminated ({e.signal_name})" if hasattr(e, "signal_name") else "interrupted"
            click.echo(f"{what}: what was written is kept; {how} to resume", err=True)
            ctx.exit(exit_code(e))
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except OSError as e:
            if os.environ.get("FEATX_DEBUG"):
                raise
            raise click.ClickException(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None
        except Exception as e:
            if os.environ.get("FEATX_DEBUG"):
                raise
            raise click.ClickException(
                f"unexpected error: {type(e).__name__}: {e} (set FEATX_DEBUG=1 for the traceback)"
            ) from None


CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True, "max_content_width": 100}


@click.group(cls=FeatxGroup, context_settings=CONTEXT)
@click.version_option(__version__, "--version", "-V", prog_name="featx")
@click.option("--verbose", "-v", is_flag=True, help="Show TensorFlow's C++ start-up and log lines (hidden by default).")
def cli(verbose):
    """featx: transfer learning and feature extraction on image datasets.

    \b
    Transfer path:     featx extract -> featx fit -> featx predict
    Deploy:            featx export (SavedModel / ONNX / TFLite, checked equal to featx predict)
    From scratch:      featx build -> featx train -> featx evaluate
    Compare:           featx report     Try it all:  featx demo
    """
    if verbose:
        from featx.runtime import tf_logging

        tf_logging.verbose()


def main(argv=None):
    """Console-script entry point."""
    from featx.runtime import signals, tf_logging

    tf_logging.quiet()  # TensorFlow's C++ start-up lines off stderr (featx --verbose shows them)
    signals.install()  # SIGTERM unwinds like Ctrl-C: one line, exit 143, partial state kept
    return cli.main(args=argv, prog_name="featx")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

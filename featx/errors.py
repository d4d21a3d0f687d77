"""Errors raised by the featx library.

Library code raises :class:`FeatxError` (or a subclass) with a message that says what was received
and what to do; the CLI turns it into one line on stderr and a non-zero exit code, never a traceback.
"""


class FeatxError(Exception):
    """A problem the user can fix (bad input, bad option, missing file)."""


class OutputExistsError(FeatxError):
    """The output exists (or a partial run exists) with different parameters."""


class WeightsUnavailableError(FeatxError):
    """Pretrained weights are neither cached nor downloadable."""


class RegistryError(FeatxError, ValueError):
    """An unknown name, or a name registered twice, in a registry (backbones, scratch models).

    Also a ``ValueError``, so callers written against the old ``scratch_models`` API keep working.
    """


class ParameterError(FeatxError, ValueError):
    """A bad value of one named parameter; ``param`` is the library's name for it (the CLI maps it
    to its flag, e.g. ``batch_size`` -> ``--batch-size``)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param

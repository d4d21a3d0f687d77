"""Library constants that the CLI also shows as choices and defaults.

Importable without numpy, OpenCV or TensorFlow, so every ``--help`` starts fast; the modules that
use them (``featx.data.decode``...) import them from here.
"""

from __future__ import annotations

from PIL import Image

#: ``--resize``: ``aspect`` (shorter side to size, then center crop) or ``plain`` (stretch).
RESIZE_MODES = ("aspect", "plain")

#: Default pixel budget per image (width x height from the header): Pillow's own bomb threshold.
DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)

#: ``featx extract --engine``: ``local`` (this process) or ``ray`` (shards on a pool of Ray actors).
ENGINES = ("local", "ray")

#: ``featx extract`` defaults.
DEFAULT_WEIGHTS = "imagenet"
DEFAULT_EXTRACT_BATCH_SIZE = 32

#: Seconds featx waits for a Ray address (``--address``) to answer before it gives up in one line
#: (``--connect-timeout``; Ray itself would retry an unreachable address for many minutes).
DEFAULT_CONNECT_TIMEOUT = 15.0

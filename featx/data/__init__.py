"""Labelled image discovery, splits and decoding."""

from featx.data.decode import IMAGE_EXTENSIONS, ImageDecodeError, load_image, read_rgb
from featx.data.discover import Discovery, discover, list_image_files
from featx.data.splits import stratified_split

__all__ = [
    "IMAGE_EXTENSIONS",
    "Discovery",
    "ImageDecodeError",
    "discover",
    "list_image_files",
    "load_image",
    "read_rgb",
    "stratified_split",
]

"""Module-scoped fixtures shared by the sharded and the Ray extract tests (import them by name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from featx.extract import extract
from tests._scale_helpers import make_folder
from tests._transfer_helpers import tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "model.keras")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("src") / "imgs")


@pytest.fixture(scope="module")
def reference(folder, model_path, tmp_path_factory) -> Path:
    """The direct (unsharded, local) extraction every other run is compared with."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    extract(folder, out, backbone=f"keras:{model_path}", batch_size=3, progress=False)
    return out

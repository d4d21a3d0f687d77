"""The README's "Python API" snippet, run exactly as printed, on a tiny dataset.

Only its first line of settings is swapped (the README's ImageNet ResNet50 cannot be downloaded
here): a tiny saved Keras model as the backbone and one training epoch. Every other line runs as
the README shows it, in a fresh process, in a folder holding ``photos/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests._transfer_helpers import tiny_model
from tests.conftest import color_image, save

REPO = Path(__file__).resolve().parents[1]
SETTINGS = 'photos, backbone, weights, epochs = "photos/", "resnet50", "imagenet", 10\n'


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_snippet_has_the_settings_line():
    code = readme_snippet()
    assert code.count(SETTINGS) == 1
    for name in ("build_images", "extract_features", "fit_features", "predict_images", "train_model",
                 "evaluate_model", "make_report"):
        assert f"featx.{name}(" in code


@pytest.mark.slow
def test_readme_python_api_runs(tmp_path):
    rng = np.random.default_rng(5)
    for c, name in enumerate(["red", "green"]):
        for i in range(12):
            save(color_image(rng, 32, 32, tint=c), tmp_path / "photos" / name / f"{i:02d}.png")
    tiny_model(tmp_path / "tiny.keras")
    code = readme_snippet().replace(SETTINGS, 'photos, backbone, weights, epochs = "photos/", "keras:tiny.keras:fc", "none", 1\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    assert re.search(r"linear probe: rank-1 \d+\.\d\d% at C=", out.stdout), out.stdout
    assert re.search(r"photos/(red|green)/\d\d\.png (red|green) 0\.\d+", out.stdout), out.stdout
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "runs" / "mini" / "model.keras").is_file()
    assert (tmp_path / "runs" / "mini" / "eval.json").is_file() or list((tmp_path / "runs").rglob("*eval.json"))
    assert "report: " in out.stdout

"""TensorFlow's C++ start-up lines stay off stderr (featx.runtime.tf_logging); ``featx --verbose`` lets them through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from featx.runtime import tf_logging
from tests.conftest import save

REPO = Path(__file__).resolve().parents[1]
TF_NOISE = re.compile(r"absl::InitializeLog|^[IWE]0000 |port\.cc|cudart_stub|cpu_feature_guard|cuInit", re.M)


def test_extract_in_a_subprocess_prints_no_tensorflow_start_up_lines(tmp_path):
    from tests._transfer_helpers import tiny_model

    model = tiny_model(tmp_path / "tiny.keras")
    for c in ("a", "b"):
        for i in range(2):
            save(np.full((16, 16, 3), 60 * i, np.uint8), tmp_path / "src" / c / f"{i}.png")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, "-m", "featx", "extract", str(tmp_path / "src"), "-o", str(tmp_path / "f.h5"),
         "-b", f"keras:{model}:fc", "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    assert "wrote 4 x 6 features" in out.stdout
    assert not TF_NOISE.search(out.stderr), out.stderr


def test_filter_keeps_everything_but_the_abseil_lines(capfd):
    noise = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795613187.068700    3844 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1795613187.069158    3844 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n"
        "I0000 00:00:1795613235.005270    5243 cpu_feature_guard.cc:227] This TensorFlow binary is optimized\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the "
        "appropriate compiler flags.\n"
    )
    with tf_logging.filtered_stderr():
        os.write(2, noise.encode())
        os.write(2, b"a real error line\n")
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == ["a Python warning", "a real error line"]


def test_quiet_installs_one_hook_and_verbose_removes_it(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(tf_logging._state, "set_level", False)
    tf_logging.quiet()
    tf_logging.quiet()
    assert sum(isinstance(f, tf_logging._QuietFinder) for f in sys.meta_path) == 1
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    tf_logging.verbose()
    assert not any(isinstance(f, tf_logging._QuietFinder) for f in sys.meta_path)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "1")  # the user's own setting wins
    tf_logging.quiet()
    tf_logging.verbose()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"

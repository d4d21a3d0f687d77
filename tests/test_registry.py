"""The registry API shared by backbones and scratch models; the CLI reads its choices, defaults and
help from it, and starts without TensorFlow.

The subprocess tests run featx in a fresh interpreter: one checks that ``--help`` of every command
and ``featx models`` import neither TensorFlow nor Keras; one adds a scratch model as one new file
in a copy of the ``scratch_models`` package and checks it reaches ``featx models``, ``featx train``,
the demo's ``-m`` and the registry-driven model tests with no other edit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from featx.backbones.registry import BACKBONES, DEFAULT_BACKBONE
from featx.cli import COMMANDS, cli
from featx.demo import DEMO_MAX_INPUT, DemoConfig, demo_input_size
from featx.errors import FeatxError, RegistryError
from featx.registry import Registry
from scratch_models import MODELS, ModelInfo

ROOT = Path(__file__).resolve().parents[1]


def _env(*paths) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (*paths, ROOT))
    return env


def _flat(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------ the registry API
def test_registry_api_register_list_get_create_unregister():
    reg = Registry("widget", order="name", hint=" or a file")
    reg.register(ModelInfo(name="Zeta", description="z"), lambda **kw: ("zeta", kw))
    reg.register(ModelInfo(name="alpha", description="a"), lambda **kw: ("alpha", kw))
    assert reg.list_names() == ["alpha", "zeta"] and list(reg) == ["alpha", "zeta"] and len(reg) == 2
    assert [i.description for i in reg.list_infos()] == ["a", "z"]
    assert reg.get_info("ZETA").name == "Zeta" and "zeta" in reg and "nope" not in reg and 3 not in reg
    assert reg.create("zeta", size=3) == ("zeta", {"size": 3})

    with pytest.raises(RegistryError) as e:
        reg.get_info("gamma")
    assert str(e.value) == "unknown widget 'gamma': choose one of alpha, zeta or a file (see `featx models`)"
    assert isinstance(e.value, FeatxError) and isinstance(e.value, ValueError)
    with pytest.raises(RegistryError, match="widget 'alpha' is already registered"):
        reg.register(ModelInfo(name="ALPHA"), lambda: None)

    reg.unregister("alpha")
    assert reg.list_names() == ["zeta"]
    with pytest.raises(RegistryError, match="unknown widget 'alpha'"):
        reg.unregister("alpha")
    with reg.registered(ModelInfo(name="temp"), lambda: "t"):
        assert reg.create("temp") == "t"
    assert reg.list_names() == ["zeta"]

    ordered = Registry("thing")  # registration order: the default entry can come first
    for n in ("b", "a"):
        ordered.register(ModelInfo(name=n), lambda: None)
    assert ordered.list_names() == ["b", "a"]
    with pytest.raises(ValueError, match="order must be one of registration, name. Received: order='size'"):
        Registry("thing", order="size")


def test_backbones_and_scratch_models_share_the_api():
    for reg in (BACKBONES, MODELS):
        assert isinstance(reg, Registry)
        assert [i.name for i in reg.list_infos()] == reg.list_names()
        with pytest.raises(RegistryError, match=f"unknown {reg.kind} 'resnet9000'"):
            reg.get_info("resnet9000")
    assert BACKBONES.list_names()[0] == DEFAULT_BACKBONE
    assert MODELS.list_names() == sorted(MODELS.list_names())


# ----------------------------------------------------------------------- CLI from the registries
def test_cli_choices_and_help_come_from_the_registries_and_nothing_leaks():
    info = ModelInfo(name="leaktest", description="test-only, registered for one test", input_size=200,
                     min_input_size=100, default_classes=2, feature_layer="f")
    run = CliRunner().invoke
    with MODELS.registered(info, lambda **kw: None):
        models = run(cli, ["models"])
        assert models.exit_code == 0 and "leaktest" in models.output and "test-only, registered" in models.output
        train = _flat(run(cli, ["train", "--help"]).output)
        assert "leaktest" in train.split("[OPTIONS]")[1].split()[0]  # the MODEL choices
        assert "leaktest 200" in train  # --input-size help lists every model's own size
        demo = _flat(run(cli, ["demo", "--help"]).output)
        assert "leaktest" in demo and "-m leaktest" in demo
        assert demo_input_size("leaktest") == 100  # its minimum, above the demo's cap
    assert "leaktest" not in MODELS
    after = run(cli, ["models"]).output
    assert "leaktest" not in after and "leaktest" not in run(cli, ["train", "--help"]).output
    assert all(name in after for name in MODELS.list_names() + BACKBONES.list_names())


def test_cli_defaults_are_the_library_defaults():
    run = CliRunner().invoke
    demo = _flat(run(cli, ["demo", "--help"]).output)
    d = DemoConfig()
    for default in (d.out, d.epochs, d.batch_size, d.weights, d.extract_size, d.lr, *d.models):
        assert f"default: {default}" in demo or f"default: {default};" in demo, default
    assert f"default: {DEFAULT_BACKBONE}" in demo and d.backbone == DEFAULT_BACKBONE
    assert f"({DEFAULT_BACKBONE}'s own is {BACKBONES.get_info(DEFAULT_BACKBONE).default_size};" in demo
    extract = _flat(run(cli, ["extract", "--help"]).output)
    assert f"Feature extractor: {', '.join(BACKBONES.list_names())}; a KerasHub preset" in extract
    assert "or a saved Keras model cut at LAYER" in extract
    assert f"[default: {DEFAULT_BACKBONE}]" in extract
    bad = run(cli, ["demo", "-m", "resnet9000"])
    assert bad.exit_code == 2 and all(n in bad.output for n in MODELS.list_names())
    # the demo trains at the model's own side, capped (AlexNet: 227 -> the cap), never below its minimum
    for info in MODELS.list_infos():
        assert demo_input_size(info.name) == max(info.min_input_size, min(info.input_size, DEMO_MAX_INPUT))


# ------------------------------------------------------------------ start-up without TensorFlow
def test_help_of_every_command_and_models_import_no_tensorflow(tmp_path):
    script = """
import json, sys
from click.testing import CliRunner
from featx.cli import COMMANDS, cli
runs = [["--help"], ["models"]] + [[name, "--help"] for name in COMMANDS]
codes = {" ".join(a): CliRunner().invoke(cli, a).exit_code for a in runs}
print(json.dumps({"codes": codes, "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}))
"""
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(res["codes"]) == {"--help", "models", *(f"{c} --help" for c in COMMANDS)}
    assert all(code == 0 for code in res["codes"].values()), res["codes"]
    assert res["heavy"] == []


# ---------------------------------------------------------------- one new file = a new model
@pytest.fixture(scope="module")
def package_with_toynet(tmp_path_factory) -> Path:
    """A copy of ``scratch_models`` with one more file, ``toynet.py`` (tests/_toynet.py)."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copytree(ROOT / "scratch_models", root / "scratch_models",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "tests" / "_toynet.py", root / "scratch_models" / "toynet.py")
    return root


def test_a_model_added_in_one_file_reaches_models_train_and_demo(package_with_toynet):
    script = """
import json, sys
from click.testing import CliRunner
import scratch_models
from featx.cli import cli
from featx.demo import demo_input_size
run = CliRunner().invoke
print(json.dumps({
    "file": scratch_models.__file__,
    "models": run(cli, ["models"]).output,
    "train": run(cli, ["train", "--help"]).output,
    "train_bad": run(cli, ["train", "resnet9000", "--train", "t.h5", "-o", "r"]).output,
    "demo": run(cli, ["demo", "--help"]).output,
    "demo_size": demo_input_size("toynet"),
    "heavy": sorted(m for m in ("tensorflow", "keras") if m in sys.modules),
}))
"""
    p = subprocess.run([sys.executable, "-c", script], cwd=package_with_toynet.parent,
                       env=_env(package_with_toynet), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["file"].startswith(str(package_with_toynet))
    line = next(x for x in res["models"].splitlines() if "toynet" in x)
    assert _flat(line) == "toynet 16-d input 16px 0.00M params ToyNet: a test-only GoogLeNet stage table"
    assert "toynet" in _flat(res["train"]).split("[OPTIONS]")[1].split()[0] and "toynet 16" in _flat(res["train"])
    assert "'toynet'" in res["train_bad"]  # listed among the accepted names
    assert "toynet" in _flat(res["demo"]) and res["demo_size"] == 16
    assert res["heavy"] == []


@pytest.mark.slow
def test_a_model_added_in_one_file_is_covered_by_the_registry_driven_tests(package_with_toynet):
    # --import-mode=append: the copy on PYTHONPATH shadows the source tree's scratch_models
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=append", "-rA",
           str(ROOT / "tests" / "test_scratch_models.py"), "-k", "toynet"]
    p = subprocess.run(cmd, cwd=package_with_toynet, env=_env(package_with_toynet), capture_output=True,
                       text=True, timeout=240)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    passed = {line.split("::")[1] for line in p.stdout.splitlines() if line.startswith("PASSED")}
    assert {
        "test_model_info[toynet]",
        "test_canonical_build_and_param_count[toynet]",  # its documented 2,643 parameters
        "test_forward_pass_is_finite_softmax[toynet]",
        "test_feature_layer_feeds_classifier[toynet]",
        "test_layer_and_weight_names_unique_and_deterministic[toynet]",
        "test_too_small_input_shape[toynet]",
    } <= passed, p.stdout[-3000:]

"""Mutation testing (mutmut 3) of the modules where a silent bug costs most; prints one JSON line per target.

Each target is one or a few modules and the narrow test selection that covers them. The repository
is copied into a scratch folder (default ``/tmp/featx-mutation/TARGET``) with a generated
``[tool.mutmut]`` section, so the working tree is never touched; mutmut then makes its mutants
(``mutants/`` in the scratch folder), runs the covering tests against each one (forked workers,
only the tests that reach the mutated function) and records killed / survived / timeout.

    python scripts/mutation.py --list
    python scripts/mutation.py metrics                  # one target (minutes on 2 cores)
    python scripts/mutation.py store-writer --jobs 2 --timeout 3600
    python scripts/mutation.py metrics --survivors      # also print each surviving mutant's diff

Score = killed / (killed + survived + timeout-free "suspicious"); mutants that no test reaches
("no tests") are counted separately: they are code the selection never runs. Needs ``pip install
mutmut`` (the ``dev`` extra has it) and fork (Linux, macOS). Not part of CI: a full target takes
from minutes to an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: target -> (modules to mutate, pytest node ids / files that cover them)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    # TensorFlow-free selections: a forked mutant worker must not run TensorFlow (not fork-safe)
    "store-writer": (["featx/store/writer.py"], ["tests/test_store.py", "-k", "not tf_dataset"]),
    "fit-search": (["featx/fit/search.py", "featx/fit/scaling.py"],
                   ["tests/test_fit_search.py::test_warm_path_search_matches_exhaustive_grid_search_on_digits",
                    "tests/test_fit_search.py::test_chosen_C_is_reproducible_for_a_seed_and_independent_of_the_backend",
                    "tests/test_fit_search.py::test_library_fit_leaves_the_callers_features_alone",
                    "tests/test_classify.py", "-k", "not predict and not tensorflow"]),
    # scaling alone on the fast fit tests (fit-search's selection runs the digits grid search: ~30 s a mutant)
    "fit-scaling": (["featx/fit/scaling.py"], ["tests/test_classify.py", "-k", "not predict and not tensorflow"]),
    # search.py alone on test_fit_search's in-memory tests (no Ray, no streaming, no CLI files)
    "fit-search-only": (["featx/fit/search.py"],
                        ["tests/test_fit_search.py", "-k", "not ray and not sgd and not report and not book and not option"]),
    "fit-tuning": (["featx/fit/tuning.py"], ["tests/test_fit_search.py", "tests/test_classify.py",
                                            "-k", "not predict and not tensorflow and not ray"]),
    "manifest": (["featx/fit/manifest.py", "featx/fit/export.py"],
                 ["tests/test_manifest.py", "tests/test_classify.py", "-k",
                  "not predict and not tensorflow and not keras_file"]),
    "metrics": (["featx/results/metrics.py"], ["tests/test_metrics.py"]),
    "shards": (["featx/extract/shards.py"], ["tests/test_shards.py"]),
}
#: copied into the scratch folder (what the tests import or read)
COPY = ["featx", "scratch_models", "tests", "scripts", "pyproject.toml", "README.md"]
STATUS = ("killed", "survived", "no tests", "timeout", "suspicious", "skipped", "segfault", "not checked")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(target: str, work: Path) -> Path:
    modules, tests = TARGETS[target]
    if work.exists():  # a fresh run: mutmut's records of an older run may predate test changes
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, work / name)
    pyproject = work / "pyproject.toml"
    text = re.sub(r"\n\[tool\.mutmut\][^\[]*", "\n", pyproject.read_text())
    text += (
        "\n[tool.mutmut]\n"
        'source_paths = ["featx", "scratch_models"]\n'
        f"only_mutate = {_toml_list(modules)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-x", "--timeout=600", "-o", "addopts="]\n'
        "timeout_multiplier = 4.0\n"
    )
    pyproject.write_text(text)
    return work


def results(work: Path, env: dict) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True)
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+): (.+)$", line)
        if m and m.group(2).strip() in STATUS:
            found[m.group(1)] = m.group(2).strip()
    return found


def summarize(target: str, found: dict[str, str], seconds: float) -> dict:
    modules, tests = TARGETS[target]
    per = {}
    for mod in modules:
        dotted = mod[:-3].replace("/", ".")
        names = {k: v for k, v in found.items() if k.startswith(dotted + ".")}
        counts = {s: sum(1 for v in names.values() if v == s) for s in STATUS}
        tested = counts["killed"] + counts["survived"] + counts["suspicious"] + counts["timeout"]
        per[mod] = {
            "mutants": len(names),
            **{k.replace(" ", "_"): v for k, v in counts.items() if v},
            # a timeout is a detected mutant (the tests did not pass); "no tests" are reported apart
            "score": round((counts["killed"] + counts["timeout"]) / tested, 3) if tested else None,
            "survivors": sorted(k for k, v in names.items() if v == "survived"),
        }
    return {"target": target, "tests": tests, "seconds": round(seconds, 1), "modules": per}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help=f"one or more of: {', '.join(TARGETS)}")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--jobs", type=int, default=1, help="mutmut workers (default 1: the cores are shared)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per target before giving up")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "featx-mutation")
    ap.add_argument("--survivors", action="store_true", help="print the diff of every surviving mutant")
    args = ap.parse_args(argv)
    if args.list or not args.targets:
        for name, (mods, tests) in TARGETS.items():
            print(f"{name:14s} {' '.join(mods)}  <- {' '.join(tests)}")
        return 0
    unknown = [t for t in args.targets if t not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)  # the scratch copy, not the working tree, must be imported
    for target in args.targets:
        work = prepare(target, args.work / target)
        t0 = time.perf_counter()
        try:
            run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs)], cwd=work,
                                 env=env, capture_output=True, text=True, timeout=args.timeout)
            note = None if run.returncode == 0 else (run.stdout + run.stderr).strip().splitlines()[-5:]
        except subprocess.TimeoutExpired:
            note = [f"stopped after {args.timeout:.0f} s: partial results"]
        summary = summarize(target, results(work, env), time.perf_counter() - t0)
        if note:
            summary["note"] = note
        print(json.dumps(summary), flush=True)
        if args.survivors:
            for mod in summary["modules"].values():
                for name in mod["survivors"]:
                    show = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=work, env=env,
                                          capture_output=True, text=True)
                    print(show.stdout.rstrip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

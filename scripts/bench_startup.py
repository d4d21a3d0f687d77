"""How long ``featx --help``, every command's ``--help`` and ``featx models`` take, each in a fresh
process, and whether they import TensorFlow/Keras (target: under 1 s, never).

Prints one JSON object: per command line the best and median wall time of ``--repeat`` fresh runs
(``python -m featx ...``, interpreter start-up included), and the modules of note each one
imported (from a separate ``-X importtime``-free check run in-process with ``sys.modules``).
``featx train --help`` before the registry refactor took about 4-8 s: it imported TensorFlow.

    python scripts/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "sklearn", "h5py", "cv2", "PIL", "numpy")

CHECK = """
import json, sys
from featx.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def run(argv: list[str], repeat: int, env: dict) -> dict:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "featx", *argv], env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if p.returncode != 0:
            return {"error": p.stderr.strip().splitlines()[-1:]}
    p = subprocess.run([sys.executable, "-c", CHECK.format(argv=argv, heavy=HEAVY)], env=env,
                       capture_output=True, text=True)
    imported = json.loads(p.stderr.strip().splitlines()[-1])
    return {"best_s": round(min(times), 3), "median_s": round(statistics.median(times), 3), "imports": imported}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(ROOT))
    from featx.cli import COMMANDS

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    bare = time.perf_counter() - t
    lines = [["--help"], ["models"]] + [[name, "--help"] for name in COMMANDS]
    results = {" ".join(argv): run(argv, a.repeat, env) for argv in lines}
    worst = max(r.get("median_s", float("inf")) for r in results.values())
    print(json.dumps({
        "python_startup_s": round(bare, 3),
        "commands": results,
        "worst_median_s": worst,
        "under_1s": worst < 1.0,
        "tensorflow_imported_by": [k for k, r in results.items() if {"tensorflow", "keras"} & set(r.get("imports", []))],
        "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()

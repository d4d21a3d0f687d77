"""``featx extract --engine ray``: same file as the local engine; killed workers and drivers resume shard by shard.

One local Ray instance (2 CPUs, no dashboard) serves the whole module; every test has a timeout
(a scheduling deadlock fails instead of hanging CI).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

from featx.errors import FeatxError
from featx.extract import extract
from featx.extract.shards import shard_dir
from tests import _extract_fixtures as _fx
from tests._scale_helpers import (
    KillAt,
    assert_same_file,
    shard_state,
    wait_for_actors_to_exit,
)

model_path, folder, reference = _fx.model_path, _fx.folder, _fx.reference  # shared module-scoped fixtures

ray = pytest.importorskip("ray")

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def ray_address():
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ctx.address_info["address"]
    ray.shutdown()


def test_ray_two_workers_equals_local(ray_address, folder, model_path, reference, tmp_path):
    out = tmp_path / "ray.h5"
    r = extract(folder, out, backbone=f"keras:{model_path}", batch_size=2, engine="ray", workers=2, shard_rows=4,
                progress=False)
    assert (r.engine, r.workers, r.shards, r.shards_run, r.rows) == ("ray", 2, 4, [0, 1, 2, 3], 15)
    assert [s["path"] for s in r.skipped] == ["cat/cat_9.png"] and r.start_seconds > 0
    assert not shard_dir(out).exists()
    assert_same_file(reference, out)
    with h5py.File(out) as f:
        assert '"device": "ray: 2 x CPU"' in f.attrs["extract_timing"]
    again = extract(folder, out, backbone=f"keras:{model_path}", progress=False)  # local engine: nothing to do
    assert again.reused


DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from pathlib import Path
    from featx.extract import extract
    from tests._scale_helpers import SlowDown

    src, out, model, address = sys.argv[1:5]
    progress = Path(out + ".shards") / "00003.h5.partial.json"

    def watch():  # SIGKILL this driver while shard 3 runs, once its first 2 rows are stored
        while True:
            try:
                if json.loads(progress.read_text())["next_index"] >= 2:
                    os.kill(os.getpid(), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    extract(src, out, backbone="keras:" + model, batch_size=2, slab_rows=2, shard_rows=4, engine="ray",
            address=address, workers=1, progress=False, on_batch=SlowDown(5.0, row=12))  # shard 3 is slow
    print("finished without being killed")
    """
)


def test_killed_worker_then_killed_driver_then_rerun_redoes_only_unfinished_shards(
    ray_address, folder, model_path, tmp_path
):
    """From an images .h5 source (15 rows, shards of 4): the result equals the local engine's."""
    from featx.build import build

    build(folder, tmp_path / "data", size=20, val=0, test=0, progress=False, workers=1)
    images = tmp_path / "data" / "train.h5"
    reference = tmp_path / "local.h5"
    extract(images, reference, backbone=f"keras:{model_path}", batch_size=4, progress=False)
    out = tmp_path / "k.h5"
    kw = dict(backbone=f"keras:{model_path}", batch_size=2, slab_rows=2, shard_rows=4, engine="ray", workers=1,
              progress=False)
    # 1. the worker actor is SIGKILLed in shard 1 (rows 4-7) after rows 4-5 were stored
    with pytest.raises(FeatxError, match="a Ray extract worker failed .*rerun the same command to resume"):
        extract(images, out, on_batch=KillAt(6), **kw)
    after_worker = shard_state(out)
    assert sorted(after_worker) == ["00000", "00001"] and after_worker["00001"] == "partial"
    assert not out.exists()

    # 2. a new driver (another process, joining this cluster) is SIGKILLed while shard 3 runs
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(images), str(out), str(model_path), ray_address],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == -9, proc.stdout[-1000:] + proc.stderr[-3000:]
    wait_for_actors_to_exit()  # the dead driver's actor is stopped by Ray
    after_driver = shard_state(out)
    assert after_driver["00000"] == after_worker["00000"]  # finished shard 0 was not redone
    assert isinstance(after_driver["00001"], tuple) and isinstance(after_driver["00002"], tuple)
    assert after_driver["00003"] == "partial" and not out.exists()  # the driver died while shard 3 ran

    # 3. the rerun does the unfinished shards only, merges, and equals the local run
    r = extract(images, out, **kw)
    assert r.shards_run == [3] and r.processed == 1 and r.rows == 15  # shard 3 (rows 12-14) resumed at row 14
    assert_same_file(reference, out)
    assert not shard_dir(out).exists()

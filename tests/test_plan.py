"""The attack plan (wdlg_core.plan): executors compute the same records, a Dask worker killed
mid-run loses nothing, and bad input gets one clear error."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from wdlg_core.experiments.gallery import single_image_jobs
from wdlg_core.plan import PageCount, Plan, PlanError, batches, execute, format_plan
from wdlg_core.profiles import get_profile
from wdlg_core.store import ResultStore

distributed = pytest.importorskip("distributed")


def small_plan(store: ResultStore, n_images: int = 2, iterations: int = 4, datasets=("mnist",)) -> Plan:
    """DLG and WDLG on the first MNIST digits, as a one-page plan (every job missing)."""
    p = get_profile("quick", datasets=datasets, iterations=iterations)
    jobs, _, _ = single_image_jobs(p, n_images)
    keys = [store.key(j.config, j.case) for j in jobs]
    return Plan(p, [PageCount("test", len(jobs), len(jobs), 0)], jobs, keys, [store.has(k) for k in keys],
                ["test"] * len(jobs))


def records(store: ResultStore, keys) -> dict:
    out = {}
    for k in keys:
        doc, arrays = store.read_record(k)
        out[k] = (doc["result"], arrays)
    return out


def test_batches_group_by_configuration_and_share_work(tmp_path):
    plan = small_plan(ResultStore(tmp_path), n_images=3)
    one = batches(plan.jobs)
    assert sorted(len(b) for b in one) == [3, 3]  # DLG and WDLG: two groups
    assert all(len({j.config.method for j in b}) == 1 for b in one)
    two = batches(plan.jobs, workers=2)
    assert sorted(len(b) for b in two) == [1, 1, 2, 2]


def test_local_and_dask_executors_write_the_same_records(tmp_path):
    a, b = ResultStore(tmp_path / "a"), ResultStore(tmp_path / "b")
    plan_a, plan_b = small_plan(a), small_plan(b)
    assert plan_a.keys == plan_b.keys
    ra = execute(plan_a, a, "local", progress=False)
    rb = execute(plan_b, b, "dask", cluster="local:2", progress=False)
    assert ra["computed"] == rb["computed"] == 4
    assert sorted(a.keys()) == sorted(b.keys()) == sorted(plan_a.keys)
    left, right = records(a, plan_a.keys), records(b, plan_b.keys)
    for k in plan_a.keys:
        (da, xa), (db, xb) = left[k], right[k]
        assert da["mse"] == pytest.approx(db["mse"], rel=1e-3, abs=1e-7)
        np.testing.assert_allclose(xa["reconstruction"], xb["reconstruction"], rtol=1e-3, atol=1e-5)
    # the attacks moved: a test of equal records must not pass on two untouched dummies
    assert all(abs(left[k][0]["mse"] - left[k][0]["mses"][0]) > 1e-4 for k in plan_a.keys)
    # a second plan finds everything stored and computes nothing
    again = small_plan(a)
    assert all(again.stored) and execute(again, a, "local", progress=False)["computed"] == 0


def test_a_killed_dask_worker_loses_no_record(tmp_path):
    from distributed import Client, LocalCluster

    store = ResultStore(tmp_path)
    plan = small_plan(store, n_images=4, iterations=300, datasets=("cifar10",))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        done = {}
        runner = threading.Thread(target=lambda: done.update(execute(plan, store, "dask", progress=False,
                                                                      scheduler=cluster.scheduler_address)))
        runner.start()
        deadline = time.time() + 120
        while time.time() < deadline and not any(client.processing().values()):
            time.sleep(0.2)
        time.sleep(2.0)  # the tasks are inside the engine now
        busy = [w for w, tasks in client.processing().items() if tasks]
        assert busy, "no task was running to interrupt"
        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=600)
        assert not runner.is_alive() and done.get("computed") == len(plan.jobs)
    files = sorted(p.name for p in store.attack_folder.iterdir())
    assert len([f for f in files if f.endswith(".json")]) == len(plan.jobs)  # one record per attack, no duplicate
    assert not [f for f in files if f.endswith(".tmp")]  # no half-written file left
    for k in plan.keys:
        assert store.has(k)
        assert store.read_record(k) is not None


def test_unreachable_scheduler_fails_fast_naming_the_address(tmp_path):
    store = ResultStore(tmp_path)
    plan = small_plan(store)
    start = time.perf_counter()
    with pytest.raises(PlanError, match="tcp://127.0.0.1:9"):
        execute(plan, store, "dask", scheduler="tcp://127.0.0.1:9", progress=False)
    assert time.perf_counter() - start < 30


def test_unwritable_store_and_bad_executor_are_one_line_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = ResultStore(blocker)  # the store's folder would have to be inside a file
    plan = small_plan(store)
    with pytest.raises(PlanError, match="cannot write the results store"):
        execute(plan, store, "local", progress=False)
    with pytest.raises(PlanError, match="valid executors: local, dask"):
        execute(plan, ResultStore(tmp_path / "ok"), "spark", progress=False)
    with pytest.raises(PlanError, match="local:N"):
        execute(plan, ResultStore(tmp_path / "ok"), "dask", cluster="remote", progress=False)


def test_format_plan_counts(tmp_path):
    plan = small_plan(ResultStore(tmp_path))
    text = format_plan(plan)
    assert "all pages (shared attacks once)" in text and "test" in text

"""The page contract (wdlg_core.pages): every page of the manifest declares its attacks with a
pure ``jobs()``, and those are exactly the attacks its notebook's computation asks for."""
from __future__ import annotations

import pytest

from wdlg_core import pages
from wdlg_core.experiments import READ_ONLY_ENV, MissingRecords
from wdlg_core.plan import execute, make_plan
from wdlg_core.runner import load_manifest
from wdlg_core.store import ResultStore


def test_every_manifest_page_has_a_page_module():
    assert [s.name for s in load_manifest()] == list(pages.PAGE_NAMES)
    for name in pages.PAGE_NAMES:
        assert callable(pages.get_page(name).jobs)


def test_unknown_page_and_parameter_errors_list_the_valid_choices():
    with pytest.raises(ValueError, match="unknown page 'fig99'.*fig03_inversion_gallery"):
        pages.get_page("fig99")
    with pytest.raises(ValueError, match="takes no parameter.*n_images"):
        pages.page_jobs("tab05_ablation", "quick", n_imgs=3)
    with pytest.raises(ValueError, match="unknown profile"):
        pages.page_jobs("tab05_ablation", "huge")


def test_jobs_are_pure_and_every_quick_page_declares_its_attacks(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    plan = make_plan("quick", store=store)
    assert not (tmp_path / "quick").exists() or not any((tmp_path / "quick").rglob("*.json"))  # nothing computed
    counts = {c.page: c.attacks for c in plan.pages}
    assert counts["tab01_settings"] == counts["replication_summary"] == 0
    assert all(counts[n] > 0 for n in pages.PAGE_NAMES if n not in ("tab01_settings", "replication_summary"))
    assert counts["fig05_loss_curves"] == counts["fig06_mse_curves"]  # the same attacks, shared
    assert len(plan.jobs) < sum(counts.values())                      # shared attacks planned once
    assert len(set(plan.keys)) == len(plan.keys)


# Small runs of three pages: the keys the page declares are the keys its computation stores.
CASES = [
    ("fig07_first_loss", dict(datasets=["mnist"], n_images=1, dummies=2),
     lambda store: __import__("wdlg_core.experiments.convergence", fromlist=["x"]).run_first_loss(
         "quick", datasets=["mnist"], n_images=1, dummies=2, store=store, progress=False).table),
    ("tab05_ablation", dict(n_images=1, iterations=3),
     lambda store: __import__("wdlg_core.experiments.ablation", fromlist=["x"]).run_ablation(
         "quick", n_images=1, iterations=3, store=store, progress=False).table),
    ("fig08_10_recovery", dict(n_batches=1, iterations=3, snapshots=[0, 2]),
     lambda store: __import__("wdlg_core.experiments.batches", fromlist=["x"]).run_batch_sweep(
         "quick", n_batches=1, iterations=3, singles="batch_members", snapshots=[0, 2, 3], store=store,
         progress=False).table),
]


@pytest.mark.parametrize("name,params,run", CASES, ids=[c[0] for c in CASES])
def test_page_jobs_are_the_attacks_its_notebook_reads(tmp_path, monkeypatch, name, params, run):
    store = ResultStore(tmp_path, profile="quick")
    plan = make_plan("quick", [name], params, store=store)
    assert plan.missing and not any(plan.stored)
    # read-only before the plan is executed: the page's computation refuses, naming the command
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    with pytest.raises(MissingRecords, match=r"wdlg run --profile quick"):
        run(store)
    report = execute(plan, store, "local", progress=False)
    assert report["computed"] == len(plan.jobs)
    table = run(store)  # still read-only: everything it asks for is stored
    assert sorted(set(table["key"])) == sorted(plan.keys)
    again = make_plan("quick", [name], params, store=store)
    assert all(again.stored)


def test_missing_records_survive_a_trip_to_a_worker_process(tmp_path):
    import pickle

    from wdlg_core.experiments.gallery import single_image_jobs
    from wdlg_core.profiles import get_profile

    jobs, _, _ = single_image_jobs(get_profile("quick", datasets=("mnist",)), 1)
    err = pickle.loads(pickle.dumps(MissingRecords(jobs, ResultStore(tmp_path, profile="quick"), "a page")))
    assert isinstance(err, MissingRecords) and "2 attack(s) of a page" in str(err)

"""Results store: round trip, atomic writes, resume after an interrupted sweep, key sensitivity."""
import json

import numpy as np
import pytest

from wdlg_core.config import AttackConfig
from wdlg_core.result import AttackResult
from wdlg_core.store import Case, ResultStore, record_key


def fake_result(config: AttackConfig, seed: int = 0, nan_loss: bool = False) -> AttackResult:
    """A small, fully populated AttackResult (B=1, 1x4x4) standing in for a real attack."""
    rng = np.random.default_rng(seed)
    rec = rng.random((1, 1, 4, 4), dtype=np.float32)
    losses = np.array([1.0, 0.5, np.nan if nan_loss else 0.25])
    return AttackResult(
        config=config, reconstruction=rec, true_labels=np.array([3]), labels=np.array([3]),
        iterations=np.array([0, 1, 2]), losses=losses, mses=np.array([0.3, 0.1, 0.01]),
        snapshots={0: rng.random((1, 1, 4, 4), dtype=np.float32), 2: rec.copy()},
        first_loss=1.0, wall_time=0.5, iterations_to_success=None, diverged=nan_loss,
        mse=0.01, psnr=20.0, ssim=0.5, success=False, label_accuracy=1.0, function_evals=3,
        meta={"device": "cpu"},
    )


CASE = Case(dataset="mnist", indices=(3,), model="lenet", model_seed=0, num_classes=10)


def test_round_trip(tmp_path):
    store = ResultStore(tmp_path, profile="t")
    config = AttackConfig(method="wdlg", iterations=2, snapshots=(0, 2))
    assert store.load(config, CASE) is None
    key = store.save(fake_result(config, nan_loss=True), CASE)
    assert key == store.key(config, CASE) and len(key) == 64
    back = store.load(config, CASE)
    assert back is not None and back.config == config
    np.testing.assert_array_equal(back.reconstruction, fake_result(config).reconstruction)
    np.testing.assert_array_equal(back.snapshots[0], fake_result(config).snapshots[0])
    assert sorted(back.snapshots) == [0, 2]
    assert np.isnan(back.losses[-1]) and back.diverged  # NaN survives JSON as null
    assert back.mse == 0.01 and back.labels.tolist() == [3]
    doc = json.loads(store.paths(key)[0].read_text())
    assert doc["case"]["indices"] == [3] and doc["provenance"]["device"] == "cpu"
    assert "wdlg_core" in doc["provenance"] and "git_commit" in doc["provenance"]


def test_partial_records_are_ignored(tmp_path):
    store = ResultStore(tmp_path, profile="t")
    config = AttackConfig(method="dlg", iterations=2)
    key = store.key(config, CASE)
    jpath, npath = store.paths(key)
    jpath.parent.mkdir(parents=True)
    # a leftover temporary file of an interrupted write is not a record
    (jpath.parent / f".{jpath.name}.abc.tmp").write_text("{")
    assert store.load(config, CASE) is None and store.keys() == []
    # NPZ written but the JSON never was: still absent
    store.save(fake_result(config), CASE)
    jpath.unlink()
    assert store.load(config, CASE) is None
    # JSON present but its NPZ cut short: absent, and recomputed by get_or_run
    store.save(fake_result(config), CASE)
    npath.write_bytes(npath.read_bytes()[:20])
    assert store.load(config, CASE) is None
    calls = []
    store.get_or_run(config, CASE, lambda: calls.append(1) or fake_result(config))
    assert calls == [1] and store.load(config, CASE) is not None


def test_resume_after_interrupted_sweep(tmp_path):
    configs = [AttackConfig(method=m, iterations=2, seed=s) for m in ("dlg", "wdlg") for s in range(3)]
    computed = []

    def sweep(fail_after=None):
        store = ResultStore(tmp_path, profile="sweep")
        for i, config in enumerate(configs):
            def run(config=config, i=i):
                if fail_after is not None and len(computed) == fail_after:
                    raise KeyboardInterrupt("simulated interruption")
                computed.append(i)
                return fake_result(config, seed=i)
            store.get_or_run(config, CASE, run)
        return store

    with pytest.raises(KeyboardInterrupt):
        sweep(fail_after=4)
    assert computed == [0, 1, 2, 3]
    store = sweep()
    assert computed == [0, 1, 2, 3, 4, 5]  # only the remaining two were computed
    assert (store.loaded, store.computed) == (4, 2)
    df = store.to_frame()
    assert len(df) == 6 and set(df["method"]) == {"dlg", "wdlg"}
    assert set(df["dataset"]) == {"mnist"} and df["mse"].eq(0.01).all()
    store = sweep()  # a full rerun loads everything
    assert computed == [0, 1, 2, 3, 4, 5] and store.loaded == 6


def test_key_changes_with_config_case_and_version():
    config = AttackConfig(method="wdlg")
    base = record_key(config, CASE, "0.1.0")
    assert base == record_key(AttackConfig(method="wdlg"), Case("mnist", [3], num_classes=10), "0.1.0")
    assert base == record_key(config.to_dict(), CASE.to_dict(), "0.1.0")  # dicts hash like objects
    others = [
        record_key(config.replace(lr=0.1), CASE, "0.1.0"),
        record_key(config.replace(estimator="dual"), CASE, "0.1.0"),
        record_key(config.replace(snapshots=(5,)), CASE, "0.1.0"),
        record_key(config, Case("mnist", (4,), num_classes=10), "0.1.0"),
        record_key(config, Case("fashion_mnist", (3,), num_classes=10), "0.1.0"),
        record_key(config, Case("mnist", (3,), model_seed=1, num_classes=10), "0.1.0"),
        record_key(config, Case("mnist", (3,), source="torchvision", num_classes=10), "0.1.0"),
        record_key(config, Case("mnist", (3,), num_classes=10, images_sha256="0f"), "0.1.0"),
        record_key(config, CASE, "0.2.0"),
    ]
    assert len({base, *others}) == len(others) + 1


def test_summary_file(tmp_path):
    store = ResultStore(tmp_path, profile="quick")
    path = store.write_summary("fig", {"a": float("nan"), "b": np.float32(1.5), "c": [np.int64(2)]})
    assert path == tmp_path / "quick" / "fig.json"
    assert store.read_summary("fig") == {"a": None, "b": 1.5, "c": [2]}
    assert not list(path.parent.glob(".*.tmp"))


def test_records_get_the_mode_open_would_give_them(tmp_path):
    import os
    import stat

    from wdlg_core import store as store_module

    store = ResultStore(tmp_path, profile="t")
    config = AttackConfig(method="wdlg", iterations=2, snapshots=(0, 2))
    key = store.save(fake_result(config), CASE)
    want = 0o666 & ~store_module._UMASK
    for path in store.paths(key):
        assert stat.S_IMODE(os.stat(path).st_mode) == want, path  # mkstemp alone gives 0600


def test_an_incomplete_record_warns_with_its_path_and_is_recomputed(tmp_path):
    import json as _json
    import warnings as _warnings

    from wdlg_core import run_attack
    from wdlg_core.data import load_images

    images, labels = load_images("mnist", 1)
    store = ResultStore(tmp_path, profile="quick")
    config = AttackConfig(method="dlg", optimizer="adam", lr=0.1, iterations=2)
    run = lambda: run_attack(images, labels, method="dlg", optimizer="adam", lr=0.1, iterations=2)  # noqa: E731
    store.get_or_run(config, CASE, run)
    jpath, npath = store.paths(store.key(config, CASE))
    good = jpath.read_text()
    for broken, what in ((good[: len(good) // 2], "cannot be read"),
                         (_json.dumps({k: v for k, v in _json.loads(good).items() if k != "config"}), "lacks 'config'")):
        jpath.write_text(broken)
        with pytest.warns(RuntimeWarning, match=what) as rec:
            store.get_or_run(config, CASE, run)
        assert str(jpath) in str(rec[0].message)
        assert store.load(config, CASE) is not None  # rewritten whole
    jpath.unlink()  # an interrupted write: the arrays without the document
    with pytest.warns(RuntimeWarning, match="interrupted write"):
        assert store.load(config, CASE) is None
    npath.unlink()
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        assert store.load(config, CASE) is None  # nothing stored: no warning


def test_json_records_turns_missing_values_into_none():
    import pandas as pd

    from wdlg_core.store import json_records

    df = pd.DataFrame({"a": [1.5, float("nan")], "b": pd.array([1, None], dtype="Int64"), "c": ["x", None]})
    rows = json_records(df)
    assert rows == [{"a": 1.5, "b": 1, "c": "x"}, {"a": None, "b": None, "c": None}]
    json.dumps(rows)  # JSON-able

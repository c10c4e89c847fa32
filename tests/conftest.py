"""Shared test set-up: nothing a test computes lands in the repository's results/ store."""
import pytest


@pytest.fixture(autouse=True)
def _results_outside_the_repository(tmp_path_factory, monkeypatch):
    """Point the default results store ($WDLG_RESULTS_ROOT) at a fresh temporary folder, so a
    command that stores attacks (``wdlg attack``) neither writes into results/ nor loads an
    earlier run's record instead of computing."""
    monkeypatch.setenv("WDLG_RESULTS_ROOT", str(tmp_path_factory.mktemp("results")))

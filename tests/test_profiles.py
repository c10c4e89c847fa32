"""wdlg_core.profiles: the attack configuration a profile gives each method."""
import pytest

from wdlg_core.profiles import get_profile


def test_dlg_family_takes_the_profiles_lbfgs_settings():
    p = get_profile("quick")
    config = p.attack_config("wdlg")
    assert (config.optimizer, config.lr, config.line_search) == (p.optimizer, p.lr, p.line_search)


def test_the_lbfgs_line_search_is_dropped_for_adam_unless_asked_for():
    p = get_profile("quick")
    assert p.line_search == "armijo"
    assert p.attack_config("dlg", optimizer="adam").line_search == "none"
    assert get_profile("quick", optimizer="adam").attack_config("dlg").line_search == "none"
    assert p.attack_config("ig").line_search == "none"  # Inverting Gradients: Adam by definition
    with pytest.raises(ValueError, match="needs optimizer 'lbfgs'"):
        p.attack_config("dlg", optimizer="adam", line_search="armijo")

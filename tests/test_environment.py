"""Install files agree: environment.yml, requirements/, pyproject.toml, setup script and CI."""

import os
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
PINS = {"torch": "==2.13.0", "torchvision": "==0.28.0"}


def requirement_lines(path):
    """Requirement strings of a pip requirements file (comments, blanks and options dropped)."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def normalise(specs):
    """{name: specifier} with canonical spelling, so 'jupyter-book>=1.0.4,<2' compares equal."""
    out = {}
    for spec in specs:
        req = Requirement(spec)
        out[req.name.lower().replace("_", "-")] = str(req.specifier)
    return out


def base():
    return normalise(requirement_lines(REPO / "requirements" / "base.txt"))


def test_environment_yml_pip_section_equals_base():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["name"] == "wdlg"
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert normalise(pip_section) == base()


def test_pyproject_dependencies_equal_base():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = normalise(project["dependencies"] + project["optional-dependencies"]["test"])
    assert declared == base()


def test_torch_pins_everywhere():
    constraints = normalise(requirement_lines(REPO / "requirements" / "constraints.txt"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    for name, pin in PINS.items():
        for where, specs in [("constraints", constraints), ("base", base()),
                             ("pyproject", normalise(project["dependencies"])), ("environment.yml", normalise(pip_section))]:
            assert specs.get(name) == pin, f"{name} not pinned to {pin} in {where}"


def test_data_only_packages_pinned_and_installed_without_deps():
    nodeps = normalise(requirement_lines(REPO / "requirements" / "nodeps.txt"))
    assert nodeps == {"foolbox": "==3.3.4", "ccexam": "==1.0.0"}
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "--no-deps -r requirements/nodeps.txt" in setup
    assert "-r requirements/base.txt -c requirements/constraints.txt" in setup


def test_ci_runs_make_test():
    ci = REPO / ".ci" / "run"
    assert os.access(ci, os.X_OK)
    lines = ci.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in lines
    assert lines[-1] == "make test"
    readme = REPO / "README.md"
    if readme.exists():  # CI must run exactly the README's test command
        assert "make test" in readme.read_text()

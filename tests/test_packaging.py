"""The project's promises about itself: conda files agree with pyproject, two commands, CI runs the README's."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO

# pip name -> conda-forge name, where they differ.
CONDA_NAMES = {
    "torch": "pytorch",
    "opencv-python-headless": "opencv",
    "ray": ("ray-default", "ray-tune"),
}


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for dep in deps:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", dep.replace(" ", ""))
        pins[match.group(1).lower()] = match.group(3)
    return pins


def conda_pins(name: str) -> dict[str, str]:
    env = yaml.safe_load((REPO / name).read_text())
    pins = {}
    for entry in env["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)(.*)", item.replace(" ", ""))
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_conda_files_pin_what_pyproject_pins():
    wanted = pyproject_pins()
    envs = {name: conda_pins(name) for name in ("environment-dl.yml", "environment-ml.yml")}
    covered = set()
    for pins in envs.values():
        for pip_name, spec in wanted.items():
            names = CONDA_NAMES.get(pip_name, pip_name)
            for conda_name in (names,) if isinstance(names, str) else names:
                if conda_name in pins:
                    assert pins[conda_name] == spec, (
                        f"{conda_name}: {pins[conda_name]} != {spec} ({pip_name})"
                    )
                    covered.add(pip_name)
    assert covered == set(wanted), f"not in any conda file: {set(wanted) - covered}"


def test_each_conda_file_holds_its_side():
    dl, ml = conda_pins("environment-dl.yml"), conda_pins("environment-ml.yml")
    assert {"pytorch", "torchvision", "ray-default", "flask", "elasticsearch"} <= set(dl)
    assert {"opencv", "scikit-learn", "scikit-image"} <= set(ml)
    for name in ("environment-dl.yml", "environment-ml.yml"):
        env = yaml.safe_load((REPO / name).read_text())
        assert env["name"] and env["channels"] == ["conda-forge"]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    head = readme[:3000]
    assert "make demo" in head and "make test" in head
    ci = (REPO / ".ci" / "run").read_text()
    commands = [
        line.strip()
        for line in ci.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert commands[-1] == "make test"


def test_layout_is_the_one_the_user_fixed():
    for name in (
        "app.py",
        "indexing",
        "features",
        "evaluation",
        "notebooks",
        "templates",
        "static",
        "environment-dl.yml",
        "environment-ml.yml",
        "tests",
    ):
        assert (REPO / name).exists(), name

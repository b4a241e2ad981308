"""`make demo` runs the main job's stages in order, serves unless SERVE=0, and can use any cbir."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def planned(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "-n", "demo", *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return [
        line for line in done.stdout.splitlines() if line.startswith("cbir ")
    ]  # make -n drops "-"


def test_demo_runs_the_stages_in_order_then_serves():
    assert planned("CBIR=cbir") == [
        "cbir config",
        "cbir dataset --dataset cifar10",
        "cbir train bovw --dataset cifar10",
        "cbir index --dataset cifar10 --method bovw,cnn",
        "cbir tune-fusion",
        "cbir evaluate --dataset cifar10 --method bovw,cnn,fusion,cnn+qe -k 100",
        "cbir serve",
    ]


def test_serve_0_stops_after_the_table_and_builds_no_venv():
    steps = planned("CBIR=cbir", "SERVE=0")
    assert steps[-1].startswith("cbir evaluate") and "cbir serve" not in steps
    dry = subprocess.run(
        ["make", "-n", "demo", "CBIR=cbir", "SERVE=0"], cwd=REPO, capture_output=True, text=True
    )
    assert "venv" not in dry.stdout

"""Fixtures in the style of the Flask tutorial: settings on a temporary CBIR_HOME, an app, a client, a CLI runner."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cbir.cli import main
from cbir.config import Settings

REPO = Path(__file__).resolve().parent.parent


def shared_cifar10() -> Path | None:
    """The offline CIFAR-10 copy: CBIR_CIFAR10 when set, else the team machines' shared folder."""
    import os

    env = os.environ.get("CBIR_CIFAR10")
    for candidate in (env, REPO.parent / "shared" / "datasets" / "cifar10-jpg.tar.gz"):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings.resolve(env={}, home=home)


@pytest.fixture
def app(home: Path):
    from app import create_app

    return create_app({"TESTING": True, "CBIR_HOME": str(home)})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Callable:
    """Run `cbir ARGS...` in-process on the temporary home; returns (exit code, stdout, stderr)."""
    for name in ("CBIR_HOME", "CBIR_STORE", "CBIR_CIFAR10", "CBIR_ES_URL", "CBIR_MAX_PIXELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CBIR_HOME", str(home))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Chromium not installed (apt-get install chromium); .ci/run installs it")
    return path

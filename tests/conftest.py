"""Fixtures in the style of the Flask tutorial: settings on a temporary CBIR_HOME, an app, a client, a CLI runner."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cbir.cli import main
from cbir.core.config import Settings

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


@pytest.fixture(scope="session")
def web_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A small generated index with `bovw` and `cnn` fields (benchmarks/web_index.py), built once."""
    from benchmarks.web_index import build_web_index

    return build_web_index(tmp_path_factory.mktemp("web-index"))


@pytest.fixture
def app(home: Path, web_index: Settings):
    """The app on the generated index, with its own temporary CBIR_HOME (runs/, reports/)."""
    from app import create_app

    settings = Settings.resolve(env={}, home=home, store=web_index.store)
    return create_app({"TESTING": True, "CBIR_SETTINGS": settings, "CBIR_INDEX_RETRY_SECONDS": 0})


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


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.skip("Chromium not installed (apt-get install chromium); .ci/run installs it")
    return path


@pytest.fixture(scope="session")
def live_server(web_index: Settings):
    """`cbir serve` (waitress) in a child process on the generated index; yields its URL.

    Uploads are limited to 1 MB here so the size checks through the real server stay small.
    """
    import os

    from benchmarks.server import cbir_serve

    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env.update({"CBIR_HOME": str(web_index.home), "CBIR_STORE": web_index.store})
    with cbir_serve(env=env, args=["--threads", "4", "--max-upload-mb", "1"]) as url:
        yield url


@pytest.fixture
def indexed(tmp_path, settings):
    """A folder dataset of four colours indexed with `bovw` and `cnn` stand-in models, and a
    `validation.json` of 16 train images beside the cnn model (for tune-fusion)."""
    from benchmarks.web_index import build_indexed_folder
    from indexing.datasets import FolderDataset

    built = build_indexed_folder(
        tmp_path,
        settings,
        labels=("red", "green", "blue", "grey"),
        train=15,
        test=5,
        spread=40,
    )
    root, models = built.data, built.models
    train = FolderDataset(root).records("train")
    validation = [r.doc_id for r in train if int(r.doc_id.rsplit("/", 1)[1][:3]) < 4]
    (models["cnn"] / "validation.json").write_text(json.dumps({"doc_ids": validation}))
    return root, models, validation

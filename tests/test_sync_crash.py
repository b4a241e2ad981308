"""A sync killed (SIGKILL) at any store write, then run again, leaves the index equal to the folder.

A child process runs the sync and stops just before or just after its n-th store write
(upsert or delete): "after" is the moment between the store's commit and the manifest's.
The parent kills it there, runs the sync again, and checks one document per file with the
vectors of the file's current bytes, none for deleted files (tests/sync_folder.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cbir.core.config import Settings
from tests.sync_folder import assert_index_equals_folder, fit_model, picture, sync, write_folder

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys
from pathlib import Path
from cbir.core.config import Settings
from indexing.stores.embedded import EmbeddedStore
from tests.sync_folder import sync

home, folder, model, hold, phase = sys.argv[1:6]
only = sys.argv[6].split(",") if len(sys.argv) > 6 else None
hold = int(hold)
writes = [0]

def held(method):
    def wrapper(self, *args, **kwargs):
        writes[0] += 1
        if writes[0] == hold and phase == "before":
            print("holding", flush=True)
            sys.stdin.read()
        result = method(self, *args, **kwargs)
        if writes[0] == hold and phase == "after":
            print("holding", flush=True)
            sys.stdin.read()
        return result
    return wrapper

EmbeddedStore.upsert = held(EmbeddedStore.upsert)
EmbeddedStore.delete = held(EmbeddedStore.delete)
sync(Settings.resolve(env={}, home=Path(home)), Path(folder), Path(model), batch_size=2, only=only)
print("finished", flush=True)
"""


def run_until_held(
    settings: Settings, folder: Path, model: Path, hold: int, phase: str, only: str = ""
) -> None:
    """Run the sync in a child, kill it with SIGKILL where it holds (or let it finish)."""
    args = [str(settings.home), str(folder), str(model), str(hold), phase] + (
        [only] if only else []
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    line = child.stdout.readline().strip()
    if line == "holding":
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
    else:
        assert child.wait() == 0 and line == "finished", f"child said {line!r}"
        pytest.fail(f"the sync made fewer than {hold} store writes")


def mutate(folder: Path) -> None:
    """6 changed, 6 deleted, 6 renamed (to a new folder), 10 added: 11 store writes at batch 2."""
    for seed in range(0, 12, 2):
        (folder / "dogs" / f"{seed:05d}.png").write_bytes(picture(1000 + seed))
    for seed in range(1, 13, 2):
        (folder / "cats" / f"{seed:05d}.png").unlink()
    (folder / "moved").mkdir()
    for seed in range(13, 25, 2):
        (folder / "cats" / f"{seed:05d}.png").rename(folder / "moved" / f"{seed:05d}.png")
    write_folder(folder, 10, start=200)


@pytest.fixture
def synced(tmp_path, settings):
    folder = write_folder(tmp_path / "photos", 40)
    model = fit_model(folder, tmp_path / "model")
    sync(settings, folder, model)
    mutate(folder)
    return folder, model


@pytest.mark.parametrize(
    ("hold", "phase"),
    [(1, "after"), (2, "before"), (2, "after"), (3, "after"), (4, "after"), (7, "before"),
     (11, "after")],
)  # fmt: skip
def test_sigkill_at_any_store_write_then_a_rerun_repairs_the_index(settings, synced, hold, phase):
    folder, model = synced
    run_until_held(settings, folder, model, hold, phase)
    sync(settings, folder, model)
    assert assert_index_equals_folder(settings, folder, model) == 44
    assert sync(settings, folder, model).encoded == 0


def test_two_crashes_and_a_change_between_them(settings, synced):
    folder, model = synced
    run_until_held(settings, folder, model, 5, "after")
    (folder / "moved" / "00013.png").write_bytes(picture(3000))  # a renamed file changes too
    (folder / "dogs" / "00020.png").unlink()
    run_until_held(settings, folder, model, 2, "after")
    sync(settings, folder, model)
    assert assert_index_equals_folder(settings, folder, model) == 43


def test_sigkill_in_a_sync_of_named_paths_then_a_rerun_of_them(settings, synced):
    folder, model = synced
    named = [str(p.relative_to(folder)) for p in sorted(folder.rglob("*.png"))]
    named += [f"cats/{seed:05d}.png" for seed in range(1, 25, 2)]  # deleted or moved away
    run_until_held(settings, folder, model, 4, "after", only=",".join(named))
    sync(settings, folder, model, only=named)
    assert assert_index_equals_folder(settings, folder, model) == 44

"""`cbir index --watch`: batches of file events keep the index equal to the folder.

No sleeping: each test waits (with a timeout) on the watcher's event for a sentinel file
written last; file events arrive in order, so every earlier change is in that batch or before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cbir.stages.watch import WatchSummary, watch_folder
from indexing.watch import ChangeQueue, FolderWatcher, mount_type
from tests.sync_folder import (
    FIELD,
    assert_index_equals_folder,
    fit_model,
    picture,
    sync,
    write_folder,
)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60


class Running:
    """watch_folder in a thread; `watcher` once the catch-up sync is done."""

    def __init__(self, settings, folder: Path, model: Path, **kwargs):
        self.ready = threading.Event()
        self.watcher: FolderWatcher | None = None
        self.summary: WatchSummary | None = None
        self.reports = []

        def on_ready(watcher):
            self.watcher = watcher
            self.ready.set()

        def target():
            self.summary = watch_folder(
                settings,
                data=str(folder),
                methods=(FIELD,),
                models={FIELD: model},
                batch_size=500,
                quiet=kwargs.pop("quiet", 0.05),
                on_sync=self.reports.append,
                on_ready=on_ready,
                **kwargs,
            )

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.ready.wait(TIMEOUT), "the catch-up sync did not finish"

    def settle(self, sentinel: Path) -> None:
        """Write `sentinel` (an image) and wait until the batch holding it has been synced."""
        done = self.watcher.expect(sentinel)
        sentinel.write_bytes(picture(99_999))
        assert done.wait(TIMEOUT), "the watcher never synced the sentinel"

    def stop(self) -> WatchSummary:
        self.watcher.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        return self.summary


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "photos", 20)


@pytest.fixture
def model(tmp_path, folder):
    return fit_model(folder, tmp_path / "model")


def test_a_burst_of_2000_created_and_500_deleted_leaves_the_index_equal_to_the_folder(
    settings, folder, model
):
    running = Running(settings, folder, model)
    assert assert_index_equals_folder(settings, folder, model) == 20
    write_folder(folder, 2000, start=1000)
    for seed in range(1000, 2000, 2):
        (folder / "dogs" / f"{seed:05d}.png").unlink()
    running.settle(folder / "zz-sentinel.png")
    summary = running.stop()
    assert assert_index_equals_folder(settings, folder, model) == 20 + 1500 + 1
    assert summary.batches >= 1 and summary.counts.added >= 1521 - 20
    assert "watch:" in summary.line() and "added" in summary.line()


def test_change_rename_and_delete_under_watch(settings, folder, model):
    running = Running(settings, folder, model)
    (folder / "dogs" / "00000.png").write_bytes(picture(4242))
    (folder / "cats" / "00001.png").rename(folder / "cats" / "renamed.png")
    (folder / "dogs" / "00002.png").unlink()
    running.settle(folder / "zz-sentinel.png")
    running.stop()
    assert assert_index_equals_folder(settings, folder, model) == 20
    renamed = [r.sync["renamed"] for r in running.reports]
    assert sum(renamed) == 1


def test_a_restart_catches_up_with_what_changed_while_down(settings, folder, model):
    Running(settings, folder, model).stop()
    for seed in range(0, 10):
        (folder / ("cats" if seed % 2 else "dogs") / f"{seed:05d}.png").unlink()
    write_folder(folder, 5, start=500)
    running = Running(settings, folder, model)  # returns once the catch-up sync is done
    assert assert_index_equals_folder(settings, folder, model) == 15
    assert running.reports[0].sync["removed"] == 10 and running.reports[0].sync["added"] == 5
    running.stop()


def test_the_polling_observer_sees_changes_too(settings, folder, model):
    running = Running(settings, folder, model, poll=0.1)
    assert running.watcher.polling
    (folder / "dogs" / "00000.png").unlink()
    running.settle(folder / "zz-sentinel.png")
    running.stop()
    assert assert_index_equals_folder(settings, folder, model) == 20


def test_events_settle_into_one_batch_and_reads_are_not_changes():
    queue = ChangeQueue()

    class Event:
        def __init__(self, kind, path, is_directory=False):
            self.event_type, self.src_path, self.is_directory = kind, path, is_directory

    queue.dispatch(Event("opened", "/p/a.png"))
    queue.dispatch(Event("closed_no_write", "/p/a.png"))
    queue.dispatch(Event("modified", "/p", is_directory=True))
    queue.dispatch(Event("created", "/p/b.png"))
    queue.dispatch(Event("moved", "/p/c.png"))
    assert queue.next_batch(quiet=0.0, max_delay=1.0) == {"/p/b.png", "/p/c.png"}
    queue.stop()
    assert queue.next_batch(quiet=0.0, max_delay=1.0) is None


def test_mount_type_of_the_root_folder():
    assert mount_type(Path("/")) not in (None, "")


def test_ctrl_c_stops_the_cli_with_a_summary(tmp_path, folder, model):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env.update({"CBIR_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)})
    args = ["--dataset", "folder", "--data", str(folder), "--method", FIELD]
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cbir.cli",
            "index",
            *args,
            "--model",
            f"{FIELD}={model}",
            "--watch",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines = []
    for line in child.stdout:
        lines.append(line)
        if line.startswith("watching"):
            break
    else:
        pytest.fail(f"no 'watching' line: {lines} {child.stderr.read()}")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode == 0, err
    assert "added 20" in "".join(lines)
    assert out.strip().splitlines()[-1].startswith("watch: 0 batches")
    assert "Traceback" not in err


def test_watch_refuses_a_dataset_that_is_not_a_folder_and_a_limit(cli, folder):
    code, out, err = cli("index", "--dataset", "cifar10", "--watch")
    assert code != 0 and "--watch follows a folder" in err + out
    code, out, err = cli("index", "--dataset", "folder", "--data", folder, "--watch", "--limit", 2)
    assert code != 0 and "drop --limit" in err + out and "Traceback" not in err


def test_sync_then_watch_agree(settings, folder, model):
    sync(settings, folder, model)
    running = Running(settings, folder, model)
    assert running.reports[0].encoded == 0
    running.stop()

"""CIFAR-10 in all its forms: official pickles (archive or folder), ImageFolder (folder or .tar.gz)."""

from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.synthetic import encode, png_bytes, tar_gz, write_cifar_batches, write_image_folder
from cbir.core.config import Settings
from cbir.core.errors import DatasetError
from indexing.cifar10 import (
    Cifar10Dataset,
    SourceKind,
    detect_source,
    download_cifar10,
    locate_cifar10,
)
from tests.conftest import REPO, shared_cifar10


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def assert_matches(ds: Cifar10Dataset, expected: dict) -> None:
    records = ds.records()
    assert len(records) == len(expected)
    for record in records:
        split, label, name = record.doc_id.split("/")
        assert (record.split, record.label) == (split, label)
        np.testing.assert_array_equal(ds.payload(record), expected[(split, label, name)])


def test_official_folder(tmp_path):
    expected = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    ds = Cifar10Dataset(tmp_path, cache_dir=tmp_path / "cache", show_progress=False)
    assert ds.kind is SourceKind.OFFICIAL_FOLDER
    assert_matches(ds, expected)
    assert len(ds.records("train")) == 30 and len(ds.records("test")) == 6
    assert ds.records()[0].doc_id.startswith("train/airplane/0000")


def test_official_archive_is_md5_checked(tmp_path):
    expected = write_cifar_batches(tmp_path / "src" / "cifar-10-batches-py")
    archive = tar_gz(tmp_path / "src", tmp_path / "cifar-10-python.tar.gz")
    ds = Cifar10Dataset(
        archive, cache_dir=tmp_path / "cache", md5=md5(archive), show_progress=False
    )
    assert ds.kind is SourceKind.OFFICIAL_ARCHIVE
    assert_matches(ds, expected)
    with pytest.raises(DatasetError, match="md5"):
        Cifar10Dataset(archive, cache_dir=tmp_path / "cache2", show_progress=False)


def test_image_folder_as_folder_and_as_archive(tmp_path):
    expected = write_image_folder(tmp_path / "tree", per_class=3)
    by_folder = Cifar10Dataset(tmp_path / "tree", cache_dir=tmp_path / "c1", show_progress=False)
    assert by_folder.kind is SourceKind.IMAGEFOLDER
    assert_matches(by_folder, expected)
    archive = tar_gz(tmp_path / "tree", tmp_path / "tree.tar.gz", arcname="cifar10")
    by_archive = Cifar10Dataset(archive, cache_dir=tmp_path / "c2", show_progress=False)
    assert by_archive.kind is SourceKind.IMAGEFOLDER_ARCHIVE
    assert by_archive.records() == [
        r.__class__(r.doc_id, r.label, r.split, r.path) for r in by_folder.records()
    ]
    assert by_archive.fingerprint == by_folder.fingerprint
    images, labels, classes = by_folder.split_array("test")
    assert images.shape == (9, 32, 32, 3) and list(labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert classes == ["airplane", "automobile", "bird"]


def test_bad_members_are_skipped_and_reported(tmp_path):
    write_image_folder(tmp_path / "tree", per_class=2)
    bird = tmp_path / "tree" / "train" / "bird"
    (bird / "big.png").write_bytes(png_bytes(0, size=40))
    (bird / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (bird / "gray.png").write_bytes(encode(Image.new("L", (32, 32), 9)))
    ds = Cifar10Dataset(tmp_path / "tree", cache_dir=tmp_path / "cache", show_progress=False)
    reasons = {s.path: s.reason for s in ds.skipped.items}
    assert "expected a 32x32" in reasons["train/bird/big.png"]
    assert "train/bird/broken.jpg" in reasons
    assert ds.record("train/bird/gray").label == "bird"  # grey images are converted, not skipped
    # Reopening from the cache still reports them.
    again = Cifar10Dataset(tmp_path / "tree", cache_dir=tmp_path / "cache", show_progress=False)
    assert {s.path for s in again.skipped.items} == set(reasons)


def test_cache_is_reused(tmp_path):
    write_image_folder(tmp_path / "tree", per_class=1)
    first = Cifar10Dataset(tmp_path / "tree", cache_dir=tmp_path / "cache", show_progress=False)
    stamp = (first.pack_dir / "images.u8").stat().st_mtime_ns
    second = Cifar10Dataset(tmp_path / "tree", cache_dir=tmp_path / "cache", show_progress=False)
    assert second.pack_dir == first.pack_dir
    assert (second.pack_dir / "images.u8").stat().st_mtime_ns == stamp


def test_truncated_archive_is_a_one_line_error(tmp_path):
    write_image_folder(tmp_path / "tree", per_class=20)
    archive = tar_gz(tmp_path / "tree", tmp_path / "tree.tar.gz")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DatasetError, match=r"damaged or truncated|cannot read"):
        Cifar10Dataset(archive, cache_dir=tmp_path / "cache", show_progress=False)


def test_pickles_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DatasetError, match="refusing to load"):
        Cifar10Dataset(tmp_path, cache_dir=tmp_path / "cache", show_progress=False)


def test_unknown_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="neither"):
        detect_source(tmp_path / "empty")
    (tmp_path / "x.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DatasetError, match="not a tar archive"):
        detect_source(tmp_path / "x.tar.gz")


def test_locate_prefers_flag_then_environment(tmp_path):
    settings = Settings.resolve(env={"CBIR_CIFAR10": str(tmp_path / "missing")}, home=tmp_path)
    with pytest.raises(DatasetError, match="CBIR_CIFAR10="):
        locate_cifar10(settings)
    assert locate_cifar10(settings, str(tmp_path)) == tmp_path
    cached = tmp_path / "datasets" / "cifar-10-python.tar.gz"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert locate_cifar10(Settings.resolve(env={}, home=tmp_path)) == cached


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_download_with_md5_check(tmp_path):
    payload = tmp_path / "serve" / "cifar.tar.gz"
    payload.parent.mkdir()
    payload.write_bytes(os.urandom(3000))

    def handler(*args, **kwargs):
        return _Quiet(*args, directory=str(payload.parent), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cifar.tar.gz"
        dest = download_cifar10(tmp_path / "out" / "c.tar.gz", url=url, md5=md5(payload))
        assert dest.read_bytes() == payload.read_bytes()
        with pytest.raises(DatasetError, match="md5"):
            download_cifar10(tmp_path / "out" / "d.tar.gz", url=url, md5="0" * 32)
        assert not (tmp_path / "out" / "d.tar.gz").exists()
    finally:
        server.shutdown()


def test_offline_download_says_what_to_do(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    with pytest.raises(DatasetError, match="set CBIR_CIFAR10"):
        download_cifar10(tmp_path / "c.tar.gz", url=f"http://127.0.0.1:{port}/c.tar.gz", timeout=2)
    assert not list(tmp_path.glob("*.part"))


SHARED = shared_cifar10()


@pytest.mark.slow
@pytest.mark.skipif(SHARED is None, reason="no offline CIFAR-10 copy (set CBIR_CIFAR10)")
def test_shared_copy_is_complete_and_balanced_in_little_memory(tmp_path):
    """The offline copy yields 50,000 + 10,000 images in 10 balanced classes, within ~1 GB of RAM.

    The peak is the process's own VmHWM: ru_maxrss would also count the peak of pytest itself,
    because Linux carries it across the fork and exec that start the child.
    """
    script = (
        "import sys\n"
        "from collections import Counter\n"
        "from indexing.cifar10 import Cifar10Dataset\n"
        "ds = Cifar10Dataset(sys.argv[1], cache_dir=sys.argv[2], show_progress=False)\n"
        "n = {s: Counter(r.label for r in ds.records(s)) for s in ('train', 'test')}\n"
        "seen = sum(len(b) for b in ds.iter_batches(batch_size=512))\n"
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
        "peak = int(hwm[0].split()[1]) // 1024\n"
        "print(sum(n['train'].values()), sum(n['test'].values()), len(n['train']),\n"
        "      len(set(n['train'].values())), len(set(n['test'].values())), seen, peak, len(ds.skipped))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(SHARED), str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout.split()
    n_train, n_test, n_classes, train_sizes, test_sizes, seen, peak_mb, skipped = map(int, out)
    assert (n_train, n_test, n_classes, seen, skipped) == (50_000, 10_000, 10, 60_000, 0)
    assert train_sizes == 1 and test_sizes == 1  # every class has the same count
    assert peak_mb < 1024, f"peak RSS {peak_mb} MB"


def test_tar_members_with_unsafe_paths_are_reported(tmp_path):
    write_image_folder(tmp_path / "tree", per_class=1)
    archive = tmp_path / "t.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree", arcname="cifar")
        info = tarfile.TarInfo("../train/bird/evil.png")
        data = png_bytes(0)
        info.size = len(data)
        import io

        tar.addfile(info, io.BytesIO(data))
    ds = Cifar10Dataset(archive, cache_dir=tmp_path / "cache", show_progress=False)
    assert {s.reason for s in ds.skipped.items} == {"unsafe path in archive"}
    assert len(ds.records()) == 6

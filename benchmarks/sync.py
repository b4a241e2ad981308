"""Sync figures: a no-op sync of a large folder, a sync of new files, and watch latency.

    python -m benchmarks.sync                        # 50,000 files, 1,000 new, 3 repeats
    python -m benchmarks.sync --files 2000 --new 200 # a quick run

Tiny generated PNGs (8x8, one per seed) and a toy model (6-dim colour moments) encoded in
this process, so the figures are the sync's own cost: walking, stat, hashing, store and
manifest writes. Each figure is a median over `repeats` runs, beside a reference measured in
the same run: the folder scan alone (the floor of any sync) for the no-op, and indexing
the same new files into an empty store for the new-file sync.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.toy_extractors import ColourMomentsExtractor
from cbir.core.config import Settings
from cbir.stages.index import index_dataset
from cbir.stages.watch import watch_folder
from indexing.datasets import FolderDataset

FIELD = "colour"


def tiny_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_files(root: Path, seeds: range, folder: str = "photos") -> None:
    """One file per seed, 1,000 to a sub-folder (as cameras and phones file them)."""
    for seed in seeds:
        path = root / f"{folder}{seed // 1000:03d}" / f"{seed:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiny_png(seed))


def sync(settings: Settings, data: Path, model: Path):
    return index_dataset(
        settings,
        dataset="folder",
        data=str(data),
        methods=(FIELD,),
        models={FIELD: model},
        ray=None,
        batch_size=1000,
        show_progress=False,
    )


def timed(run) -> tuple[float, object]:
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out


def watch_latency(settings: Settings, data: Path, model: Path, repeats: int, start: int) -> float:
    """Median seconds from a new file written to the end of the sync that makes it searchable."""
    ready = threading.Event()
    holder: dict = {}

    def on_ready(watcher) -> None:
        holder["watcher"] = watcher
        ready.set()

    thread = threading.Thread(
        target=watch_folder,
        kwargs=dict(
            data=str(data),
            methods=(FIELD,),
            models={FIELD: model},
            settings=settings,
            quiet=0.05,
            on_ready=on_ready,
        ),
        daemon=True,
    )
    thread.start()
    if not ready.wait(3600):
        raise RuntimeError("the watcher's catch-up sync did not finish")
    watcher = holder["watcher"]
    latencies = []
    for i in range(repeats):
        path = data / "photos-watch" / f"{start + i:06d}.png"
        path.parent.mkdir(exist_ok=True)
        done = watcher.expect(path)
        began = time.perf_counter()
        path.write_bytes(tiny_png(start + i))
        if not done.wait(600):
            raise RuntimeError(f"{path} was never synced")
        latencies.append(time.perf_counter() - began)
    watcher.stop()
    thread.join(60)
    return statistics.median(latencies)


def run(files: int, new: int, repeats: int, workdir: Path) -> dict:
    data = workdir / "data"
    clock = time.perf_counter()
    write_files(data, range(files))
    made = time.perf_counter() - clock
    images = [np.asarray(Image.open(io.BytesIO(tiny_png(s))).convert("RGB")) for s in range(64)]
    model = ColourMomentsExtractor().fit(images).save(workdir / "model")
    settings = Settings.resolve(env={}, home=workdir / "home")
    first, _ = timed(lambda: sync(settings, data, model))

    scans = [timed(lambda: FolderDataset(data).records())[0] for _ in range(repeats)]
    noops = []
    for _ in range(repeats):
        seconds, report = timed(lambda: sync(settings, data, model))
        assert report.encoded == 0 and report.sync["unchanged"] == files, report.sync
        noops.append(seconds)

    adds, fresh = [], []
    next_seed = files
    for r in range(repeats):
        seeds = range(next_seed, next_seed + new)
        next_seed += new
        write_files(data, seeds, folder=f"new{r}-")
        seconds, report = timed(lambda: sync(settings, data, model))
        assert report.sync["added"] == new and report.encoded == new, report.sync
        adds.append(seconds)
        alone = workdir / f"alone{r}"
        write_files(alone, seeds)
        fresh_settings = Settings.resolve(env={}, home=workdir / f"alone-home{r}")
        fresh.append(timed(lambda s=fresh_settings, a=alone: sync(s, a, model))[0])

    small = workdir / "small"
    write_files(small, range(10**7, 10**7 + 1000))
    small_settings = Settings.resolve(env={}, home=workdir / "small-home")
    sync(small_settings, small, model)
    latency_small = watch_latency(small_settings, small, model, repeats, 2 * 10**7)
    latency_large = watch_latency(settings, data, model, repeats, 3 * 10**7)
    documents = files + repeats * new
    return {
        "files": files,
        "new": new,
        "repeats": repeats,
        "generate_s": round(made, 2),
        "first_index_s": round(first, 2),
        "noop_sync_s": round(statistics.median(noops), 3),
        "folder_scan_s (reference)": round(statistics.median(scans), 3),
        "new_files_sync_s": round(statistics.median(adds), 3),
        "same_files_into_empty_store_s (reference)": round(statistics.median(fresh), 3),
        "watch_latency_s (1,000-file folder)": round(latency_small, 3),
        f"watch_latency_s ({documents:,}-file folder)": round(latency_large, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="where to write (default: a temporary directory)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        figures = run(args.files, args.new, args.repeats, Path(tmp))
    figures["load_before"] = [round(x, 2) for x in load]
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["command"] = "python -m benchmarks.sync " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

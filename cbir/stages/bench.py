"""`cbir bench`: every speed and memory figure of the project in one run, as JSON and a table.

Parts (`--only`): encode (in-process, and on Ray unless `ray=None`), write, latency,
search, evaluation, web, verify (`+gv`: 100 candidates verified per query, beside the
unverified search, on a copy dev set it builds once under `$CBIR_HOME/bench/`). Each stage runs in its own process (`benchmarks.stage`), which
reports its own peak RSS, beside a baseline stage that only imports the benchmark's modules. Methods are whatever models `indexing.models` finds; a method without
a model is listed with the reason and left out, never replaced by a stand-in.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cbir.core.config import Settings
from cbir.core.errors import CbirError
from features.base import ModelError, read_manifest
from features.registry import METHODS
from indexing.encoding import LOCAL_RAY, RayOptions
from indexing.models import model_dir

REPO = Path(__file__).resolve().parents[2]  # cbir/stages/bench.py -> the repository
PARTS = ("encode", "write", "latency", "search", "evaluation", "web", "verify")
MODEL_PARTS = {"encode", "write", "latency"}  # need at least one real model


@dataclass(frozen=True)
class Sizes:
    encode_images: int = 1_000
    documents: int = 50_000
    latency_queries: int = 200
    search_queries: int = 10_000
    search_dim: int = 512
    evaluation_topics: int = 10_000
    web_clients: int = 20
    web_seconds: float = 10.0
    verify_distractors: int = 500  # the copy dev set `verify` builds (benchmarks/copydays.py)
    verify_queries: int = 0  # 0: every copy (99)


FULL = Sizes()
QUICK = Sizes(
    encode_images=40,
    documents=2_000,
    latency_queries=10,
    search_queries=200,
    search_dim=64,
    evaluation_topics=100,
    web_clients=2,
    web_seconds=1.0,
    verify_distractors=30,
    verify_queries=9,
)


def parse_parts(value: str | None) -> list[str]:
    """`encode,search` -> the parts in their running order; None -> all."""
    if not value:
        return list(PARTS)
    wanted = [p.strip() for p in value.split(",") if p.strip()]
    unknown = [p for p in wanted if p not in PARTS]
    if unknown or not wanted:
        raise CbirError(f"--only {value!r}: choose from {', '.join(PARTS)} (comma-separated)")
    return [p for p in PARTS if p in wanted]


def available_models(settings: Settings) -> tuple[dict[str, Path], dict[str, str]]:
    """`({method: model directory}, {method: why it has none})` over the registered methods."""
    found, missing = {}, {}
    for method in METHODS:
        try:
            found[method] = model_dir(settings, method)
        except ModelError as exc:
            missing[method] = str(exc)
    return found, missing


def run_bench(
    settings: Settings,
    *,
    parts: Sequence[str] = PARTS,
    quick: bool = False,
    repeat: int = 3,
    dataset: str = "cifar10",
    data: str | None = None,
    ray: RayOptions | None = LOCAL_RAY,
    k: int = 10,
    out: str | Path | None = None,
    echo=print,
) -> dict[str, Any]:
    """Run the chosen parts; returns the results, also written as JSON (path under `"file"`)."""
    if repeat < 1:
        raise CbirError(f"--repeat must be at least 1, got {repeat}")
    sizes = QUICK if quick else FULL
    dirs, missing = available_models(settings)
    # Manifests, not models: this process stays small (no torch), since its children fork from it.
    models = {m: read_manifest(path) for m, path in dirs.items()}
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "repeat": repeat,
        "sizes": asdict(sizes),
        "dataset": {"name": dataset, "data": data or settings.cifar10},
        "store": settings.store,
        "machine": _machine(),
        "methods": {
            m: {"path": str(dirs[m]), **{k: models[m][k] for k in ("name", "dim", "fingerprint")}}
            for m in dirs
        },
        "methods_without_model": missing,
        "stages": {},
    }
    for method, reason in missing.items():
        echo(f"bench: {method} skipped: {reason}")
    config = {
        "settings": {
            "home": str(settings.home),
            "store": settings.store,
            "cifar10": settings.cifar10,
            "max_pixels": settings.max_pixels,
        },
        "dataset": dataset,
        "data": data,
        "models": {m: str(p) for m, p in dirs.items()},
        "dims": {m: models[m]["dim"] for m in dirs},
        "sizes": asdict(sizes),
        "repeat": repeat,
        "k": k,
        "ray": asdict(ray) if ray is not None else None,
    }
    for stage in _stages(parts, ray):
        if stage in ("encode", "encode_ray", "write", "latency") and not dirs:
            results["stages"][stage] = {
                "skipped": "no method has a model (see methods_without_model)"
            }
        elif stage == "web" and not _has_index(settings):
            results["stages"][stage] = {
                "skipped": f"no index at {settings.store}; build one with `cbir index`"
            }
        else:
            echo(f"bench: {stage} ...")
            results["stages"][stage] = run_stage(stage, config)
        if "skipped" in results["stages"][stage]:
            echo(f"bench: {stage} skipped: {results['stages'][stage]['skipped']}")
    if "encode" in parts and ray is None:
        results["stages"]["encode_ray"] = {"skipped": "Ray left out (--no-ray)"}
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["load_average_end"] = list(os.getloadavg())
    path = Path(out) if out else settings.home / "bench" / f"bench-{_stamp()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    results["file"] = str(path)
    path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _stages(parts: Sequence[str], ray: RayOptions | None) -> list[str]:
    stages = ["baseline"]
    for part in PARTS:
        if part in parts:
            stages.append(part)
            if part == "encode" and ray is not None:
                stages.append("encode_ray")
    return stages


def run_stage(stage: str, config: dict[str, Any]) -> dict[str, Any]:
    """Run one stage in a child process; its figures plus `wall_s` (and its `peak_rss_mb`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory() as tmp:
        config_path, result_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        config_path.write_text(json.dumps({**config, "stage": stage}))
        began = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.stage", str(config_path), str(result_path)],
            env=env,
            cwd=REPO,
            check=False,
        )
        wall = time.perf_counter() - began
        if result_path.is_file():
            result = json.loads(result_path.read_text())
        else:
            result = {"error": f"the stage process exited with status {child.returncode}"}
    result["wall_s"] = wall
    return result


def _has_index(settings: Settings) -> bool:
    from indexing.stores.urls import open_store

    try:
        with open_store(settings.store, settings) as store:
            return store.exists() and bool(store.fields) and store.count() > 0
    except CbirError:
        return False


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
    }


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

"""One `cbir bench` stage in its own process, so that its peak memory is its own.

    python -m benchmarks.stage CONFIG.json RESULT.json

CONFIG holds the stage name, the settings, the dataset, the model directories and the sizes
(written by `cbir.stages.bench`); RESULT receives the stage's figures and this process's peak
RSS, or `{"error": ...}` with exit status 1.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cbir.core.config import Settings
from cbir.core.errors import CbirError

Config = dict[str, Any]


def _settings(config: Config) -> Settings:
    return Settings.resolve(env={}, **config["settings"])


def _dataset(config: Config):
    from indexing.dataset_kinds import open_dataset

    return open_dataset(config["dataset"], _settings(config), config.get("data"))


def _dirs(config: Config) -> dict[str, Path]:
    return {m: Path(p) for m, p in config["models"].items()}


def _workdir(config: Config) -> Path:
    path = _settings(config).home / "bench" / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _index_sample(config: Config, n: int):
    from benchmarks.pipeline import spread
    from indexing.datasets import index_side

    dataset = _dataset(config)
    return dataset, spread(index_side(dataset), n)


def baseline(config: Config) -> dict:
    """The interpreter with the benchmark's modules imported: the floor under every stage."""
    import benchmarks.pipeline  # noqa: F401

    return {}


def encode(config: Config) -> dict:
    from benchmarks.pipeline import encode_throughput

    dataset, records = _index_sample(config, config["sizes"]["encode_images"])
    return encode_throughput(dataset, records, _dirs(config), config["repeat"])


def encode_ray(config: Config) -> dict:
    from benchmarks.pipeline import ray_encode_throughput
    from indexing.encoding import RayOptions

    dataset, records = _index_sample(config, config["sizes"]["encode_images"])
    options = RayOptions(**config["ray"])
    return ray_encode_throughput(dataset, records, _dirs(config), config["repeat"], options)


def write(config: Config) -> dict:
    from benchmarks.pipeline import write_throughput

    return write_throughput(
        config["dims"], config["sizes"]["documents"], config["repeat"], workdir=_workdir(config)
    )


def latency(config: Config) -> dict:
    from benchmarks.pipeline import spread
    from benchmarks.query_latency import query_latency
    from features.registry import load_extractor

    dataset = _dataset(config)
    pool = dataset.records("test") or dataset.records()
    queries = spread(pool, config["sizes"]["latency_queries"] + 1)
    models = {m: load_extractor(path) for m, path in _dirs(config).items()}
    with tempfile.TemporaryDirectory(dir=_workdir(config)) as tmp:
        return query_latency(
            [dataset.image(r) for r in queries],
            models,
            config["sizes"]["documents"],
            Path(tmp) / "index",
            k=config["k"],
            source=config["settings"]["store"],
        )


def search(config: Config) -> dict:
    from benchmarks.stores import approximate_tradeoff, search_vs_faiss

    sizes = config["sizes"]
    result = search_vs_faiss(
        n=sizes["documents"],
        dim=sizes["search_dim"],
        queries=sizes["search_queries"],
        k=100,
        repeats=config["repeat"],
    )
    result["approximate"] = approximate_tradeoff(
        n=sizes["documents"],
        dim=sizes["search_dim"],
        queries=min(1_000, sizes["search_queries"]),
        workdir=_workdir(config),
    )
    return result


def evaluation(config: Config) -> dict:
    from benchmarks.evaluation import run_benchmark

    return run_benchmark(topics=config["sizes"]["evaluation_topics"], repeats=config["repeat"])


def web(config: Config) -> dict:
    """The load check against `cbir serve` on the configured index (the server's peak RSS too)."""
    import os
    from dataclasses import asdict

    from benchmarks.server import cbir_serve
    from benchmarks.web import run_load_check

    settings = _settings(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env.update({"CBIR_HOME": str(settings.home), "CBIR_STORE": settings.store})
    if settings.cifar10:
        env["CBIR_CIFAR10"] = settings.cifar10
    sizes = config["sizes"]
    with cbir_serve(env=env, args=["--threads", "8"]) as url:
        report = run_load_check(url, None, sizes["web_clients"], sizes["web_seconds"], 10)
    out = asdict(report)
    # The server has exited and been waited for: it is this process's largest child (its
    # figure includes this small process's memory at fork time, see peak_rss_mb).
    out["server_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return out


def verify(config: Config) -> dict:
    """`+gv` per query on a generated copy dev set (built and indexed once, then reused)."""
    from benchmarks.copy_detection import bench_verification

    sizes = config["sizes"]
    workdir = _workdir(config) / f"copies-{sizes['verify_distractors']}"
    return bench_verification(workdir, sizes["verify_distractors"], sizes["verify_queries"])


STAGES: dict[str, Callable[[Config], dict]] = {
    "baseline": baseline,
    "encode": encode,
    "encode_ray": encode_ray,
    "write": write,
    "latency": latency,
    "search": search,
    "evaluation": evaluation,
    "web": web,
    "verify": verify,
}


def main(argv: list[str] | None = None) -> int:
    config_path, result_path = argv if argv is not None else sys.argv[1:]
    config = json.loads(Path(config_path).read_text())
    try:
        result = STAGES[config["stage"]](config)
        status = 0
    except (CbirError, OSError, RuntimeError, ValueError, ImportError) as exc:
        traceback.print_exc()
        result, status = {"error": f"{type(exc).__name__}: {exc}"}, 1
    result["peak_rss_mb"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(result, indent=1, default=float))
    return status


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started running Python, in MiB.

    Linux's VmHWM belongs to the current program only; `ru_maxrss` would also count the
    parent's memory copied at fork time, before exec. Elsewhere, `ru_maxrss` it is.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


if __name__ == "__main__":
    sys.exit(main())

"""Load check of the web API: concurrent clients posting searches against `cbir serve`.

    python -m benchmarks.web                 # against the configured index (CBIR_HOME / CBIR_STORE)
    python -m benchmarks.web --synthetic     # builds a small generated index first (from a checkout)
    python -m benchmarks.web --url http://127.0.0.1:5000/   # an already running server

Each client thread keeps one HTTP/1.1 connection and alternates an upload search
(multipart PNG) with a search by id, for a fixed duration; the report has requests,
errors, requests/s and latency percentiles. Not a timed test: a figure to read.
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Headless Chromium as the browser tests and the README screenshot launch it (Debian's build).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class LoadReport:
    url: str
    clients: int
    seconds: float
    method: str
    k: int
    requests: int
    uploads: int
    by_id: int
    errors: int
    requests_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"load check: {self.clients} clients for {self.seconds:.1f} s against {self.url} "
            f"({self.method}, k={self.k}, uploads and by-id alternating)",
            f"  requests {self.requests:,} ({self.uploads:,} uploads, {self.by_id:,} by id), "
            f"errors {self.errors}, {self.requests_per_s:,.1f} req/s",
            f"  latency p50 {self.p50_ms:.1f} ms, p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
            *(f"  error: {e}" for e in self.error_examples),
        ]


def multipart(
    fields: dict[str, str], file_field: str, filename: str, data: bytes
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type (the standard library has no encoder)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    out.write(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    out.write(data)
    out.write(f"\r\n--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def load_check(
    url: str,
    *,
    upload: bytes,
    ids: Sequence[str],
    method: str,
    k: int = 10,
    clients: int = 20,
    seconds: float = 10.0,
) -> LoadReport:
    """`clients` threads searching for `seconds`, alternating an upload of `upload` and an id."""
    parts = urllib.parse.urlsplit(url)
    upload_body, upload_type = multipart(
        {"method": method, "k": str(k)}, "image", "query.png", upload
    )
    latencies: list[list[float]] = [[] for _ in range(clients)]
    counts = [[0, 0, 0] for _ in range(clients)]  # uploads, by id, errors
    examples: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        id_cycle = itertools.cycle(ids[n % len(ids) :] + list(ids[: n % len(ids)]))
        start.wait()
        turn = n
        while time.perf_counter() < deadline[0]:
            by_id = turn % 2 == 1
            turn += 1
            if by_id:
                body = json.dumps({"id": next(id_cycle), "method": method, "k": k}).encode()
                ctype = "application/json"
            else:
                body, ctype = upload_body, upload_type
            began = time.perf_counter()
            try:
                conn.request("POST", "/api/search", body=body, headers={"Content-Type": ctype})
                response = conn.getresponse()
                payload = response.read()
                ok = response.status == 200 and len(json.loads(payload)["results"]) > 0
                problem = None if ok else f"HTTP {response.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            latencies[n].append(time.perf_counter() - began)
            counts[n][1 if by_id else 0] += 1
            if problem:
                counts[n][2] += 1
                if len(examples) < 5:
                    examples.append(problem)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    all_ms = np.array([t for per in latencies for t in per]) * 1000
    uploads, by_id, errors = (sum(c[i] for c in counts) for i in range(3))
    p50, p95, p99 = np.percentile(all_ms, [50, 95, 99]) if len(all_ms) else (np.nan,) * 3
    return LoadReport(
        url=url,
        clients=clients,
        seconds=elapsed,
        method=method,
        k=k,
        requests=len(all_ms),
        uploads=uploads,
        by_id=by_id,
        errors=errors,
        requests_per_s=len(all_ms) / elapsed,
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        error_examples=examples,
    )


def queries_from(url: str, method: str | None) -> tuple[str, bytes, list[str]]:
    """Ask the server what to search: its method, up to 100 indexed ids, and one image to upload."""
    with urllib.request.urlopen(url + "api/stats", timeout=60) as response:
        stats = json.load(response)
    methods = stats["searchable"]
    chosen = method or ("cnn" if "cnn" in methods else methods[0])
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    body, ctype = multipart({"method": chosen, "k": "100"}, "image", "noise.png", buffer.getvalue())
    request = urllib.request.Request(url + "api/search", data=body, headers={"Content-Type": ctype})
    with urllib.request.urlopen(request, timeout=60) as response:
        ids = [hit["id"] for hit in json.load(response)["results"]]
    with urllib.request.urlopen(
        url + "api/images/" + urllib.parse.quote(ids[0]), timeout=60
    ) as response:
        image = response.read()
    return chosen, image, ids


def run_load_check(
    url: str, method: str | None, clients: int, seconds: float, k: int
) -> LoadReport:
    chosen, image, ids = queries_from(url, method)
    return load_check(
        url, upload=image, ids=ids, method=chosen, k=k, clients=clients, seconds=seconds
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running server (default: start cbir serve)")
    parser.add_argument("--synthetic", action="store_true", help="serve a small generated index")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--method", help="default: cnn when the index has it")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument(
        "--threads", type=int, default=8, help="server threads (cbir serve --threads)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.url:
        url = args.url if args.url.endswith("/") else args.url + "/"
        report = run_load_check(url, args.method, args.clients, args.seconds, args.k)
    else:
        from benchmarks.server import cbir_serve

        with tempfile.TemporaryDirectory() as tmp:
            env = None
            if args.synthetic:
                env = synthetic_env(Path(tmp))
            with cbir_serve(env=env, args=["--threads", str(args.threads)]) as url:
                report = run_load_check(url, args.method, args.clients, args.seconds, args.k)
    print(json.dumps(asdict(report), indent=2) if args.json else "\n".join(report.lines()))
    return 1 if report.errors else 0


def synthetic_env(root: Path) -> dict[str, str]:
    """Environment for a server on a generated index under `root` (needs the repo's tests/)."""
    import os

    from benchmarks.web_index import build_web_index

    settings = build_web_index(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    env.update({"CBIR_HOME": str(settings.home), "CBIR_STORE": settings.store})
    return env


if __name__ == "__main__":
    sys.exit(main())

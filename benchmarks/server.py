"""Run the real `cbir serve` (waitress) in a child process on a free loopback port.

Used by the load check, the browser tests and the README screenshot. Readiness is an event,
not a guess: the server prints its URL once its socket listens, then one /api/health
request (answered from the listen backlog) confirms it serves.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from cbir.core.errors import CbirError

REPO = Path(__file__).resolve().parent.parent
URL_LINE = re.compile(r"(http://\S+/)")


@contextmanager
def cbir_serve(
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    start_timeout: float = 120.0,
) -> Iterator[str]:
    """Start `cbir serve --port 0 ARGS` with `env` (default: this environment); yields its URL.

    The child runs this checkout's code (its root is put first on PYTHONPATH). It is
    terminated on exit. Raises CbirError with the child's stderr when it does not start.
    """
    child_env = dict(os.environ if env is None else env)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p
    )
    command = [
        sys.executable,
        "-m",
        "cbir.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *args,
    ]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env, cwd=REPO
        )
        try:
            url = _wait_for_url(process, start_timeout)
            if url is None:
                stderr.seek(0)
                raise CbirError(f"cbir serve did not start: {stderr.read()[-2000:]}")
            with urllib.request.urlopen(url + "api/health", timeout=start_timeout) as response:
                health = json.load(response)
            if health.get("status") != "ok":
                raise CbirError(f"cbir serve at {url} is not healthy: {health}")
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_url(process: subprocess.Popen, timeout: float) -> str | None:
    """The URL from the child's first stdout line that has one; None when it exits or times out."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            return None
        match = URL_LINE.search(line)
        if match:
            return match.group(1)

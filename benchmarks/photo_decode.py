"""Decoding phone-sized JPEGs: reduced (draft mode) against full resolution, time and peak memory.

    PYTHONPATH=. python -m benchmarks.photo_decode [--repeats 5]

Writes a 12 Mpx (4000x3000) and a 200 Mpx (16320x12240) gradient JPEG to a temporary folder,
then decodes each in a fresh child process per setting (1,024 px and 32 px working side, and
full resolution as the reference) and prints median seconds and the child's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

SIZES = {"12mpx": (4000, 3000), "200mpx": (16320, 12240)}
SETTINGS = {"side 1024": "1024", "side 32": "32", "full (reference)": "None"}
CHILD = (
    "import sys, time\n"
    "from features.imaging import decode_image\n"
    "side = None if sys.argv[2] == 'None' else int(sys.argv[2])\n"
    "start = time.perf_counter()\n"
    "image = decode_image(sys.argv[1], min_side=side, max_pixels=10**9)\n"
    "seconds = time.perf_counter() - start\n"
    "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM:')]\n"
    "print(seconds, int(hwm[0].split()[1]) // 1024, image.shape[1], image.shape[0])\n"
)


def write_jpeg(path: Path, width: int, height: int) -> None:
    gray = Image.linear_gradient("L").resize((width, height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    Image.merge("RGB", (gray, gray, gray)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())


def measure(path: Path, side: str, repeats: int) -> tuple[float, int, str]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), side],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout.split()
        runs.append((float(out[0]), int(out[1]), f"{out[2]}x{out[3]}"))
    return (
        statistics.median(r[0] for r in runs),
        int(statistics.median(r[1] for r in runs)),
        runs[0][2],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'file':<8} {'setting':<18} {'decoded':>12} {'median s':>9} {'peak MB':>8}")
        for name, (w, h) in SIZES.items():
            path = Path(tmp) / f"{name}.jpg"
            write_jpeg(path, w, h)
            for label, side in SETTINGS.items():
                seconds, peak, shape = measure(path, side, args.repeats)
                print(f"{name:<8} {label:<18} {shape:>12} {seconds:>9.3f} {peak:>8}")


if __name__ == "__main__":
    main()

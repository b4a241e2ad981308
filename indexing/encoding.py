"""The shared batch path: decode and encode image batches on Ray workers (or in-process).

Each worker builds its extractors once from saved model directories (paths travel, never
live models), so a cluster only needs the same package and access to the model files.
One query image never comes here: it is encoded in-process by the caller.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cbir.core.config import DEFAULT_MAX_PIXELS
from cbir.core.progress import progress
from features.base import Extractor, ModelInfo
from features.imaging import ImageDecodeError, decode_image
from features.local import LocalFeatures, extract_local
from features.registry import load_extractor
from indexing.datasets import ImageBatch, ImageRecord
from indexing.skipped import SkippedFile

log = logging.getLogger(__name__)


@dataclass
class EncodedBatch:
    """Vectors for the decodable images of one batch, and the images that were not."""

    records: list[ImageRecord]
    vectors: dict[str, np.ndarray]  # field -> float32 (len(records), dim)
    skipped: list[SkippedFile] = field(default_factory=list)
    local: list[LocalFeatures] | None = None  # per record, when local features were asked for


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: local Ray by default, a cluster with `address`."""

    address: str | None = None
    workers: int | None = None  # default: one per `threads_per_worker` CPUs
    threads_per_worker: int = 1
    gpus_per_worker: float = 0.0


LOCAL_RAY = RayOptions()


def limit_threads(threads: int | None) -> None:
    """Cap the math libraries of this process at `threads` (None leaves them alone)."""
    if not threads:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)
    with contextlib.suppress(ImportError):
        import cv2

        cv2.setNumThreads(threads)
    import sys

    if "torch" in sys.modules:  # never import torch just to limit it
        sys.modules["torch"].set_num_threads(threads)


class BatchEncoder:
    """Decodes payloads and encodes them with every model; one instance per worker."""

    def __init__(
        self,
        model_dirs: Mapping[str, str | Path],
        threads: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        local: Mapping[str, int] | None = None,
    ):
        limit_threads(threads)
        self.max_pixels = max_pixels
        self.local = dict(local) if local is not None else None  # extract_local keywords
        self.extractors: dict[str, Extractor] = {
            name: load_extractor(path) for name, path in model_dirs.items()
        }
        # Extractors that import torch lazily get the cap too.
        limit_threads(threads)
        self.min_side = decoding_side(
            self.extractors.values(), None if self.local is None else self.local.get("max_side")
        )

    def infos(self) -> dict[str, ModelInfo]:
        return {name: ex.info for name, ex in self.extractors.items()}

    def encode(self, records: list[ImageRecord], payloads: list) -> EncodedBatch:
        images, kept, skipped = [], [], []
        for record, payload in zip(records, payloads, strict=True):
            try:
                images.append(
                    decode_image(
                        payload,
                        name=record.path,
                        max_pixels=self.max_pixels,
                        min_side=self.min_side,
                    )
                )
            except ImageDecodeError as exc:
                skipped.append(SkippedFile(record.path, exc.reason))
                continue
            kept.append(record)
        vectors = {
            name: (ex.encode(images) if images else np.zeros((0, ex.dim), np.float32))
            for name, ex in self.extractors.items()
        }
        local = (
            [extract_local(im, **self.local) for im in images] if self.local is not None else None
        )
        return EncodedBatch(kept, vectors, skipped, local)


def decoding_side(extractors: Iterable[Extractor], local_max_side: int | None = None) -> int | None:
    """The short side images are decoded at to be encoded (`decode_image`'s `min_side`):
    only as large as the most demanding model (or the local features' max side) needs."""
    sides = [ex.input_side for ex in extractors]
    if local_max_side is not None:  # a short side >= max_side leaves the long side >= max_side
        sides.append(local_max_side)
    return None if None in sides or not sides else max(sides)


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[None]:
    """Connect to Ray (start a local one when needed); shut down only what we started."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = {
        "include_dashboard": False,
        "logging_level": logging.WARNING,
        "log_to_driver": True,
    }
    if options.address:
        kwargs["address"] = options.address
    else:
        kwargs["num_cpus"] = os.cpu_count() or 1
    ray.init(**kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def encode_batches(
    batches: Iterable[ImageBatch],
    model_dirs: Mapping[str, str | Path],
    *,
    ray: RayOptions | None = LOCAL_RAY,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    total: int | None = None,
    desc: str = "encode",
    show_progress: bool = True,
    local: Mapping[str, int] | None = None,
) -> Iterator[EncodedBatch]:
    """Encode `batches` with every model in `model_dirs` (field name -> saved model directory).

    With `ray=None` everything runs in this process (same code, same vectors); otherwise
    batches go to a pool of Ray actors, at most two per worker in flight, and results come
    back as they finish (not in input order). `total` (images) sizes the progress bar.
    `local` (extract_local keywords) adds each image's local features to the batch.
    """
    bar = progress(desc=desc, total=total, disable=not show_progress)
    try:
        if ray is None:
            encoder = BatchEncoder(model_dirs, max_pixels=max_pixels, local=local)
            for batch in batches:
                result = encoder.encode(batch.records, batch.payloads)
                bar.update(len(batch))
                yield result
            return
        yield from _encode_on_ray(batches, model_dirs, ray, max_pixels, bar, local)
    finally:
        bar.close()


def _encode_on_ray(
    batches, model_dirs, options: RayOptions, max_pixels: int, bar, local=None
) -> Iterator[EncodedBatch]:
    import ray as ray_api

    with ray_session(options):
        cpus = int(ray_api.cluster_resources().get("CPU", 1))
        workers = options.workers or max(1, cpus // max(1, options.threads_per_worker))
        actor_cls = ray_api.remote(BatchEncoder).options(
            num_cpus=options.threads_per_worker, num_gpus=options.gpus_per_worker
        )
        dirs = {name: str(Path(path).resolve()) for name, path in model_dirs.items()}
        actors = [
            actor_cls.remote(dirs, options.threads_per_worker, max_pixels, local)
            for _ in range(workers)
        ]
        try:
            in_flight: dict = {}
            free = [a for a in actors for _ in range(2)]
            iterator = iter(batches)
            exhausted = False
            while True:
                while free and not exhausted:
                    batch = next(iterator, None)
                    if batch is None:
                        exhausted = True
                        break
                    actor = free.pop()
                    ref = actor.encode.remote(batch.records, batch.payloads)
                    in_flight[ref] = (actor, len(batch))
                if not in_flight:
                    break
                done, _ = ray_api.wait(list(in_flight), num_returns=1)
                actor, n = in_flight.pop(done[0])
                free.append(actor)
                result = ray_api.get(done[0])
                bar.update(n)
                yield result
        finally:
            for actor in actors:
                ray_api.kill(actor)

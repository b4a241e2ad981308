"""The `cbir dataset` stage: open a dataset, decode every image once, summarise and report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cbir.core.config import Settings
from cbir.core.progress import Stopwatch, progress, summary_line
from features.imaging import ImageDecodeError, decode_image
from indexing.dataset_kinds import open_dataset
from indexing.datasets import Dataset, DatasetKind, DatasetSummary


@dataclass(frozen=True)
class SummaryResult:
    dataset: Dataset
    summary: DatasetSummary
    report_path: Path
    timing: str


def summarize_dataset(
    settings: Settings, kind: str, data: str | None = None, report_path: str | Path | None = None
) -> SummaryResult:
    """Open `kind` (cifar10 | folder), check that every image decodes, write the skip report."""
    clock = Stopwatch()
    dataset = open_dataset(kind, settings, data)
    # CIFAR-10 was decoded once when its cache was built; other datasets are checked here.
    if dataset.name != DatasetKind.CIFAR10.value:
        bar = progress(desc="check images", total=len(dataset.records()))
        for batch in dataset.iter_batches(batch_size=256):
            for record, payload in zip(batch.records, batch.payloads, strict=True):
                try:
                    decode_image(payload, name=record.path, max_pixels=settings.max_pixels)
                except ImageDecodeError as exc:
                    dataset.skipped.add(record.path, exc.reason)
            bar.update(len(batch))
        bar.close()
    path = (
        Path(report_path) if report_path else settings.reports_dir / f"skipped-{dataset.name}.json"
    )
    dataset.skipped.write(path)
    summary = dataset.summary()
    return SummaryResult(
        dataset=dataset,
        summary=summary,
        report_path=path,
        timing=summary_line(f"dataset {dataset.name}", summary.total, clock.seconds),
    )

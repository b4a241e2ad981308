"""What a BoVW fit tells its user: vocabulary use, descriptors per image, images with none."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "vocabulary_report.json"


@dataclass
class VocabularyReport:
    """Diagnostics of one fit, over the train images it saw.

    `images_without_descriptors` are positions in the fitted image sequence; the train
    stage turns them into doc ids. Such images get a zero SIFT channel, never an error.
    """

    images: int
    descriptors: int  # image descriptors (mirrors not counted)
    words: int
    words_used: int  # words that are the nearest word of at least one descriptor
    vocabulary_sample: int  # descriptors the k-means was fitted on
    images_without_descriptors: list[int] = field(default_factory=list)
    pca_variance_kept: float | None = None  # fraction of the raw vectors' variance
    seconds: dict[str, float] = field(default_factory=dict)
    doc_ids_without_descriptors: list[str] = field(default_factory=list)

    @property
    def empty_words(self) -> int:
        return self.words - self.words_used

    @property
    def mean_descriptors(self) -> float:
        return self.descriptors / self.images if self.images else 0.0

    def lines(self, listed: int = 10) -> list[str]:
        """Human-readable lines; at most `listed` images without descriptors are named."""
        out = [
            f"vocabulary: {self.words:,} words fitted on {self.vocabulary_sample:,} descriptors; "
            f"{self.words_used:,} used, {self.empty_words:,} empty on {self.images:,} train images",
            f"descriptors: {self.mean_descriptors:.1f} per image on average "
            f"({self.descriptors:,} in all)",
        ]
        missing = self.doc_ids_without_descriptors or [
            str(i) for i in self.images_without_descriptors
        ]
        out.append(f"images with no descriptors (zero SIFT channel): {len(missing):,}")
        out += [f"  {name}" for name in missing[:listed]]
        if len(missing) > listed:
            out.append(f"  ... and {len(missing) - listed:,} more (see {REPORT_FILE})")
        if self.pca_variance_kept is not None:
            out.append(f"PCA keeps {self.pca_variance_kept:.1%} of the variance")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["empty_words"] = self.empty_words
        data["mean_descriptors"] = self.mean_descriptors
        return data

    def write(self, directory: Path) -> Path:
        path = Path(directory) / REPORT_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

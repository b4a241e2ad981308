"""The search choice tuned on validation: the fusion rule and weights, and each method's query expansion.

`cbir tune-fusion` (cbir/stages/tune.py, grid search in evaluation/fusion_tuning.py) writes it
to `$CBIR_HOME/models/fusion.json`; search, the page and `cbir evaluate` read it here, with no
tuning code imported. A choice made for other models is ignored, and the reason is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cbir.core.config import Settings
from indexing.expansion import Expansion
from indexing.fusion import FusionRule

FUSION_FILE = "fusion.json"
FUSED_METHODS = ("bovw", "cnn")


@dataclass
class FusionExpansionChoice:
    """The chosen rule and weights, how they were chosen, and every candidate's score."""

    rule: str
    weights: dict[str, float]
    measure: str
    value: float
    queries: int
    validation_file: str
    models: dict[str, str]  # method -> fingerprint of the model that built the field
    key: str
    candidates: list[dict] = field(default_factory=list)
    # method -> {"k", "alpha", measure, "unexpanded", "candidates"}: the query expansion chosen
    expansion: dict[str, dict] = field(default_factory=dict)
    created: str = ""
    reused: bool = False

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "reused"}


def choice_file(settings: Settings) -> Path:
    """Where the choice lives: `$CBIR_HOME/models/fusion.json`."""
    return settings.models_dir / FUSION_FILE


def load_choice(settings: Settings) -> FusionExpansionChoice | None:
    """The saved choice, or None when there is none (or it cannot be read)."""
    path = choice_file(settings)
    try:
        return FusionExpansionChoice(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def fusion_for(
    settings: Settings, fingerprints: Mapping[str, str]
) -> tuple[FusionRule, dict[str, float], dict]:
    """The fusion to use without explicit options: (rule, weights, provenance for the summary).

    The saved choice when it was made for these models (`fingerprints`: method -> fingerprint
    of the index's fields); otherwise RRF with weight 1 each, and the provenance says why.
    """
    default = (FusionRule.RRF, {m: 1.0 for m in FUSED_METHODS})
    choice = load_choice(settings)
    if choice is None:
        return *default, {"source": "default (no tuned fusion: run `cbir tune-fusion`)"}
    if any(choice.models.get(m) != fingerprints.get(m) for m in FUSED_METHODS):
        return *default, {
            "source": f"default ({choice_file(settings)} was tuned for other models; run "
            "`cbir tune-fusion` again)"
        }
    return (
        FusionRule(choice.rule),
        dict(choice.weights),
        {
            "source": "tuned on validation",
            "file": str(choice_file(settings)),
            "validation_file": choice.validation_file,
            "validation_queries": choice.queries,
            "measure": choice.measure,
            "value": choice.value,
        },
    )


def expansion_for(settings: Settings, method: str, fingerprint: str) -> tuple[Expansion, dict]:
    """The query expansion for `method` without explicit options: (expansion, provenance).

    The one chosen on validation when `fusion.json` was tuned for this model; otherwise
    the default `Expansion()`, and the provenance says why.
    """
    choice = load_choice(settings)
    tuned = choice.expansion.get(method) if choice is not None else None
    if tuned is None:
        return Expansion(), {"source": "default (not tuned: run `cbir tune-fusion`)"}
    if choice.models.get(method) != fingerprint:
        return Expansion(), {
            "source": f"default ({choice_file(settings)} was tuned for another {method} model; "
            "run `cbir tune-fusion` again)"
        }
    return Expansion(int(tuned["k"]), float(tuned["alpha"])), {
        "source": "tuned on validation",
        "file": str(choice_file(settings)),
        "measure": choice.measure,
        "value": tuned[choice.measure],
        "unexpanded": tuned["unexpanded"],
    }

"""Measures as value objects, parsed from trec_eval's spellings (`map_cut.100`, `P.5,10`, `P_10`).

Print order, default cutoffs and the nicknames (`official`, `all_trec`, `set`) follow trec_eval
9.0.8's `measures.c`; the families we compute are listed in `FAMILIES`. `map_minRk` is ours,
not trec_eval's: AP@k divided by min(R, k) (the "mAP@k" of the retrieval literature, ceiling
1.0), as opposed to `map_cut` = AP@k divided by R.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from evaluation import compat
from evaluation.errors import MeasureError

TREC_DEFAULT_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)


@dataclass(frozen=True)
class Family:
    """One measure family: its name, whether it takes cutoffs, and how trec_eval prints it."""

    name: str
    description: str
    cutoffs: tuple[int, ...] = ()  # default cutoffs; empty for a single-valued measure
    count: bool = False  # printed as an integer (%ld) and summed over topics, not averaged
    per_topic: bool = True  # printed for each topic under -q
    trec: bool = True  # computed by trec_eval itself (False: our addition)

    @property
    def has_cutoffs(self) -> bool:
        return bool(self.cutoffs)


# In trec_eval's print order (measures.c), then our additions.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("runid", "the run tag of the last line of the run file", per_topic=False),
        Family("num_q", "topics evaluated (-c: topics in the qrels)", count=True, per_topic=False),
        Family("num_ret", "documents retrieved (after -M)", count=True),
        Family("num_rel", "relevant documents, R (summed; -c: grade > 0 in all qrels)", count=True),
        Family("num_rel_ret", "relevant documents retrieved", count=True),
        Family("map", "average precision: sum of precision at each relevant rank / R"),
        Family("Rprec", "precision after R documents"),
        Family("recip_rank", "1 / rank of the first relevant document"),
        Family("P", "precision at k, always divided by k", TREC_DEFAULT_CUTOFFS),
        Family("recall", "relevant in the top k / R", TREC_DEFAULT_CUTOFFS),
        Family(
            "ndcg_cut", "nDCG at k, gain = grade, discount log2(rank + 1)", TREC_DEFAULT_CUTOFFS
        ),
        Family("map_cut", "AP at k divided by R (not min(R, k))", TREC_DEFAULT_CUTOFFS),
        Family(
            "map_minRk",
            "AP at k divided by min(R, k): the literature's mAP@k, ceiling 1.0 (not trec_eval)",
            TREC_DEFAULT_CUTOFFS,
            trec=False,
        ),
    )
}

# trec_eval 9.0.8 nicknames with all their members, so we can say which ones we leave out.
GROUPS: dict[str, tuple[str, ...]] = {
    "official": (
        "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec",
        "bpref", "recip_rank", "iprec_at_recall", "P",
    ),
    "all_trec": (
        "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec",
        "bpref", "recip_rank", "iprec_at_recall", "P", "relstring", "recall", "infAP",
        "gm_bpref", "Rprec_mult", "utility", "11pt_avg", "binG", "G", "ndcg", "ndcg_rel",
        "Rndcg", "ndcg_cut", "map_cut", "relative_P", "success", "set_P", "set_relative_P",
        "set_recall", "set_map", "set_F", "num_nonrel_judged_ret",
    ),
    "set": (
        "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "utility", "set_P", "set_recall",
        "set_relative_P", "set_map", "set_F",
    ),
}  # fmt: skip

_CUTOFF_SUFFIX = re.compile(r"^(?P<family>.+)_(?P<cutoffs>\d+)$")


@dataclass(frozen=True)
class Measure:
    """One printed value: a family and, for families with cutoffs, one cutoff (`P_10`)."""

    family: str
    cutoff: int | None = None

    @property
    def name(self) -> str:
        return self.family if self.cutoff is None else f"{self.family}_{self.cutoff}"

    @property
    def info(self) -> Family:
        return FAMILIES[self.family]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class MeasureSelection:
    """Parsed `-m` arguments: the measures in print order and the trec_eval ones we leave out."""

    measures: tuple[Measure, ...]
    unsupported: tuple[str, ...] = ()

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.measures]


def parse_measures(
    specs: Iterable[str], *, first_params_win: bool = False, version: str = compat.DEFAULT
) -> MeasureSelection:
    """Parse measure spellings: `map`, `P.5,10`, `map_cut.100`, `P_10`, `official`, `all_trec`.

    trec_eval uses only the first parameter list given for a family (`-m P.5 -m P.10` prints
    P_5 alone); `first_params_win=True` does the same (the CLI), the default takes the union.
    A nickname expands to the members we compute; the others are listed in `unsupported`.
    `version` picks the release's nicknames (10.0's all_trec has unj, rbp, rbp_resid too).
    Raises MeasureError for unknown names and bad parameters.
    """
    groups = _groups(version)
    requested: dict[str, list[tuple[int, ...]]] = {}
    unsupported: list[str] = []
    for spec in specs:
        family, cutoffs = _parse_one(spec)
        if family in groups:
            for member in groups[family]:
                if member in FAMILIES:
                    requested.setdefault(member, [])
                elif member not in unsupported:
                    unsupported.append(member)
            continue
        params = requested.setdefault(family, [])
        if cutoffs is not None:
            params.append(cutoffs)
    measures: list[Measure] = []
    for family, info in FAMILIES.items():
        if family not in requested:
            continue
        if not info.has_cutoffs:
            measures.append(Measure(family))
            continue
        given = requested[family]
        if not given:
            chosen: Iterable[int] = info.cutoffs
        elif first_params_win:
            chosen = given[0]
        else:
            chosen = {k for ks in given for k in ks}
        measures.extend(Measure(family, k) for k in sorted(chosen))
    return MeasureSelection(tuple(measures), tuple(unsupported))


def _groups(version: str) -> dict[str, tuple[str, ...]]:
    extra = compat.EXTRA_ALL_TREC.get(version, ())
    if not extra:
        return GROUPS
    members = GROUPS["all_trec"]
    at = members.index("recall") + 1
    return {**GROUPS, "all_trec": (*members[:at], *extra, *members[at:])}


def _parse_one(spec: str) -> tuple[str, tuple[int, ...] | None]:
    spec = spec.strip()
    if "." in spec:
        family, _, params = spec.partition(".")
        if not params:
            raise MeasureError(f"measure {spec!r}: nothing after '.' (write e.g. P.5,10)")
    elif spec in FAMILIES or spec in GROUPS:
        return spec, None
    elif (m := _CUTOFF_SUFFIX.match(spec)) and m["family"] in FAMILIES:
        family, params = m["family"], m["cutoffs"]
    else:
        family, params = spec, ""
    if family in GROUPS:
        if params:
            raise MeasureError(f"measure group {family!r} takes no parameters")
        return family, None
    if family not in FAMILIES:
        raise MeasureError(_unknown(family))
    info = FAMILIES[family]
    if params and not info.has_cutoffs:
        raise MeasureError(f"measure {family!r} takes no parameters (got {spec!r})")
    return family, _parse_cutoffs(spec, params) if params else None


def _parse_cutoffs(spec: str, params: str) -> tuple[int, ...]:
    cutoffs: list[int] = []
    for part in params.split(","):
        if not part.strip().isdigit():
            raise MeasureError(f"measure {spec!r}: cutoff {part!r} is not a positive integer")
        cutoffs.append(int(part))
    if min(cutoffs) <= 0:
        raise MeasureError(f"measure {spec!r}: cutoffs must be positive")
    if len(set(cutoffs)) != len(cutoffs):
        raise MeasureError(f"measure {spec!r}: duplicate cutoffs")
    return tuple(sorted(cutoffs))


def _unknown(family: str) -> str:
    supported = ", ".join(FAMILIES)
    if any(family in members for members in GROUPS.values()):
        return f"trec_eval measure {family!r} is not implemented here (supported: {supported})"
    return f"unknown measure {family!r} (supported: {supported}; groups: {', '.join(GROUPS)})"


DEFAULT_MEASURES = ("official",)

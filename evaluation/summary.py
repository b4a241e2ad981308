"""The `cbir evaluate` summary as a table: measures per method, next to the published baselines."""

from __future__ import annotations

from dataclasses import dataclass, field

# The system this project descends from, CIFAR-10 with k = 100 (trec_eval map_cut_100).
PUBLISHED_BASELINES = {"bovw (published)": 0.0019, "vgg16 (published)": 0.0088}


@dataclass
class MethodResult:
    measures: dict[str, float]
    per_label: dict[str, dict[str, float]]
    run_file: str
    search_seconds: float
    model: dict | None = None  # name, dim, fingerprint (None for fusion)
    full_ranking: dict | None = None  # map_all, map_found_1000 over every document (or None)


@dataclass
class EvaluationSummary:
    dataset: str
    store: str
    queries: int
    documents: int
    k: int
    exact: bool
    methods: dict[str, MethodResult]
    encode_seconds: float
    qrels_file: str
    out_dir: str
    fusion: dict = field(default_factory=dict)
    expansion: dict = field(default_factory=dict)  # "cnn+qe" -> k, alpha, where they came from
    skipped_queries: list[dict] = field(default_factory=list)
    finished: str = ""
    reused: bool = False

    def to_json(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k not in ("methods", "reused")}
        data["methods"] = {m: r.__dict__ for m, r in self.methods.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> EvaluationSummary:
        methods = {m: MethodResult(**r) for m, r in data["methods"].items()}
        return cls(**{**data, "methods": methods})


def measures_for(k: int) -> list[str]:
    """trec_eval spellings of what `cbir evaluate` reports at cut-off k."""
    cuts = sorted({10, k})
    return [
        f"map_cut.{k}",
        f"map_minRk.{k}",
        "map",
        f"P.{','.join(map(str, cuts))}",
        f"recall.{k}",
        "ndcg_cut.10",
        "recip_rank",
        "num_q",
        "num_ret",
        "num_rel",
        "num_rel_ret",
    ]


def columns(k: int) -> list[tuple[str, str]]:
    """(measure name, column heading) pairs of the table, in order."""
    precision = [("P_10", "P_10")] + ([(f"P_{k}", f"P_{k}")] if k != 10 else [])
    return [
        (f"map_cut_{k}", f"map_cut_{k}"),
        (f"map_minRk_{k}", f"AP@{k}/min(R,{k})"),
        ("map", "map"),
        *precision,
        (f"recall_{k}", f"recall_{k}"),
        ("ndcg_cut_10", "ndcg_cut_10"),
        ("recip_rank", "recip_rank"),
    ]


def summary_rows(summary: EvaluationSummary) -> tuple[list[str], list[list[str]]]:
    cols = columns(summary.k)
    header = ["method", *[title for _, title in cols], "search s"]
    rows = []
    for method, result in summary.methods.items():
        cells = [f"{result.measures.get(name, float('nan')):.4f}" for name, _ in cols]
        rows.append([method, *cells, f"{result.search_seconds:.1f}"])
    if summary.dataset == "cifar10" and summary.k == 100:
        for name, value in PUBLISHED_BASELINES.items():
            rows.append([name, f"{value:.4f}", *["-"] * (len(cols) - 1), "-"])
    return header, rows


def summary_table(summary: EvaluationSummary) -> str:
    """A plain-text table for the terminal."""
    header, rows = summary_rows(summary)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_markdown(summary: EvaluationSummary) -> str:
    header, rows = summary_rows(summary)
    k = summary.k
    out = [
        f"# cbir evaluate: {summary.dataset}",
        "",
        f"{summary.queries:,} queries against {summary.documents:,} documents, top {k}, "
        f"{'exact' if summary.exact else 'approximate'} search, store `{summary.store}`.",
        f"`map_cut_{k}` is trec_eval's (divided by all R relevant documents); "
        f"`AP@{k}/min(R,{k})` is AP@{k} normalised by min(R, {k}) (ceiling 1.0).",
        f"Query encoding: {summary.encode_seconds:.1f} s.",
        *_fusion_line(summary.fusion),
        *_expansion_lines(summary.expansion),
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *["| " + " | ".join(row) + " |" for row in rows],
        "",
        f"## AP@{k}/min(R,{k}) per label",
        "",
    ]
    methods = list(summary.methods)
    labels = list(next(iter(summary.methods.values())).per_label) if methods else []
    out.append("| label | " + " | ".join(methods) + " |")
    out.append("| --- | " + " | ".join("---" for _ in methods) + " |")
    key = f"map_minRk_{k}"
    for label in labels:
        cells = [
            f"{summary.methods[m].per_label.get(label, {}).get(key, float('nan')):.4f}"
            for m in methods
        ]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _fusion_line(fusion: dict) -> list[str]:
    """Which fusion rule and weights were used, and where they came from."""
    if not fusion:
        return []
    weights = ", ".join(f"{m} {w:g}" for m, w in fusion["weights"].items())
    source = fusion.get("source", "")
    return [f"Fusion: {fusion['rule']} (weights {weights}); {source}."]


def _expansion_lines(expansion: dict) -> list[str]:
    """Each `+qe` method's query expansion, and where its k and alpha came from."""
    return [
        f"{method}: alpha query expansion, k {options['k']}, alpha {options['alpha']:g}; "
        f"{options.get('source', '')}."
        for method, options in expansion.items()
    ]

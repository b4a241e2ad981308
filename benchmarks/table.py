"""The `cbir bench` results as a table: what, ours, the reference measured in the same run, ratio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, str, str, str]
HEADER: Row = ("what", "ours", "reference (same run)", "ratio")


def _n(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def _ms(stats: dict, prefix: str = "") -> str:
    return "/".join(f"{stats[f'{prefix}{p}_ms']:.1f}" for p in ("p50", "p95", "p99"))


def _encode(stage: dict) -> list[Row]:
    return [
        (f"encode {m}, in-process ({stage['images']:,} images)",
         f"{_n(r['images_per_s'])} images/s", "", "")
        for m, r in stage["methods"].items()
    ]  # fmt: skip


def _encode_ray(stage: dict) -> list[Row]:
    return [
        (f"encode {m}, Ray {stage['ray_cpus']} CPUs ({stage['images']:,} images)",
         f"{_n(r['ray_images_per_s'])} images/s",
         f"in-process {_n(r['in_process_images_per_s'])} images/s",
         f"{r['speedup']:.2f}x the in-process rate")
        for m, r in stage["methods"].items()
    ]  # fmt: skip


def _write(stage: dict) -> list[Row]:
    dims = "+".join(f"{m} {d}" for m, d in stage["fields"].items())
    return [(
        f"index write, {stage['documents']:,} docs ({dims} dims), {stage['batch']:,} per commit",
        f"{_n(stage['store_docs_per_s'])} docs/s",
        f"flat file + fsync {_n(stage['flat_file_docs_per_s'])} docs/s",
        f"{stage['store_seconds'] / stage['flat_file_seconds']:.1f}x the time",
    )]  # fmt: skip


def _latency(stage: dict) -> list[Row]:
    rows = _latency_rows(stage, stage["methods"], "exact store")
    for option, figures in stage.get("store_options", {}).items():
        rows += _latency_rows(stage, figures["methods"], f"local:PATH{option}")
    return rows


def _latency_rows(stage: dict, methods: dict, store: str) -> list[Row]:
    rows = []
    for method, r in methods.items():
        detail = (
            f" (encode {r['encode_p50_ms']:.1f} + search {r['search_p50_ms']:.1f} ms at p50)"
            if "encode_p50_ms" in r
            else ""
        )
        reference = f"faiss search {_ms(r, 'faiss_')} ms" if "faiss_p50_ms" in r else ""
        rows.append((
            f"query latency {method}, {stage['documents']:,} docs, {store}, k={stage['k']}: "
            "p50/p95/p99",
            f"{_ms(r)} ms{detail}", reference, "",
        ))  # fmt: skip
    return rows


def _search(stage: dict) -> list[Row]:
    what = f"batch search {stage['queries']:,} x {stage['n']:,} x {stage['dim']}, k={stage['k']}"
    reference = f"faiss.IndexFlatIP {_s(stage['faiss_IndexFlatIP_s'])}"
    if "load_average_before" in stage:  # the 1-minute load average before / after the rounds
        load = (stage["load_average_before"][0], stage["load_average_after"][0])
        reference += f" (load {load[0]:.1f} / {load[1]:.1f})"
    rows = [
        (
            f"{what}, store.search (Hit lists)",
            _s(stage["embedded_search_s"]),
            reference,
            f"{stage['ratio_search_to_faiss']:.2f}x the time",
        )
    ]
    if "embedded_search_ranked_s" in stage:
        rows.append(
            (
                f"{what}, store.search_ranked (arrays)",
                _s(stage["embedded_search_ranked_s"]),
                reference,
                f"{stage['ratio_search_ranked_to_faiss']:.2f}x the time",
            )
        )
    return [*rows, *_approximate(stage.get("approximate"))]  # fmt: skip


def _approximate(stage: dict | None) -> list[Row]:
    """One row per ef_search of the HNSW index: queries/s and recall@k against exact."""
    if not stage:
        return []
    return [
        (f"hnsw m={stage['m']} ef_search={r['ef_search']}, {stage['n']:,} x {stage['dim']}, "
         f"k={stage['k']}: q/s, recall@{stage['k']}",
         f"{_n(r['qps'])} q/s, recall {r['recall']:.3f}",
         f"exact {_n(stage['exact_qps'])} q/s", f"{r['qps'] / stage['exact_qps']:.1f}x the q/s")
        for r in stage["settings"]
    ]  # fmt: skip


def _evaluation(stage: dict) -> list[Row]:
    explicit = stage["explicit"]
    ours, theirs = explicit["ours"]["wall_s"], explicit["pytrec_eval"]["wall_s"]
    return [
        (f"evaluation, {stage['topics']:,} topics x {stage['depth']}, 7 measures",
         _s(ours), f"pytrec_eval {_s(theirs)}", f"{ours / theirs:.2f}x the time"),
        (f"evaluation by label (R = 5,000, {stage['labels']['judgments']:,} judgments)",
         _s(stage["labels"]["ours"]["wall_s"]), "", ""),
    ]  # fmt: skip


def _web(stage: dict) -> list[Row]:
    return [(
        f"web load check, {stage['clients']} clients, {stage['seconds']:.0f} s, {stage['method']}",
        f"{stage['requests_per_s']:,.0f} req/s, p50/p95/p99 "
        f"{stage['p50_ms']:.0f}/{stage['p95_ms']:.0f}/{stage['p99_ms']:.0f} ms, "
        f"{stage['errors']} errors",
        f"server peak RSS {stage['server_peak_rss_mb']:,.0f} MB", "",
    )]  # fmt: skip


def _verify(stage: dict) -> list[Row]:
    def pair(phase: str) -> str:
        return f"{stage[f'{phase}_p50_ms']:.1f}/{stage[f'{phase}_p95_ms']:.1f} ms"

    return [(
        f"+gv: verify {stage['candidates']} candidates x 2 views, {stage['documents']:,} docs, "
        f"{stage['queries']} queries, {stage['workers']} threads: p50/p95",
        f"{pair('verify')} (CPU {pair('verify_cpu')}; query views {pair('query_views')})",
        f"unverified cnn search of {stage['candidates']} {pair('search')}",
        f"{stage['verify_p50_ms'] / stage['search_p50_ms']:.2f}x the search at p50",
    )]  # fmt: skip


ROWS: dict[str, Callable[[dict], list[Row]]] = {
    "encode": _encode,
    "encode_ray": _encode_ray,
    "write": _write,
    "latency": _latency,
    "search": _search,
    "evaluation": _evaluation,
    "web": _web,
    "verify": _verify,
}


def rows(results: dict[str, Any]) -> list[Row]:
    """One or more rows per stage; skipped and failed stages say so; then peak memory."""
    out: list[Row] = []
    stages = results["stages"]
    for method, reason in results.get("methods_without_model", {}).items():
        out.append((f"{method}", "skipped", reason, ""))
    for name, stage in stages.items():
        if name == "baseline":
            continue
        if "skipped" in stage:
            out.append((name, "skipped", stage["skipped"], ""))
        elif "error" in stage:
            out.append((name, "failed", stage["error"], ""))
        else:
            out.extend(ROWS[name](stage))
    floor = stages.get("baseline", {}).get("peak_rss_mb")
    for name, stage in stages.items():
        if name != "baseline" and "peak_rss_mb" in stage:
            reference = f"baseline process {floor:,.0f} MB" if floor else ""
            out.append(
                (f"peak RSS, {name} stage", f"{stage['peak_rss_mb']:,.0f} MB", reference, "")
            )
    return out


def table(results: dict[str, Any], markdown: bool = False) -> str:
    body = rows(results)
    if markdown:
        lines = ["| " + " | ".join(HEADER) + " |", "| --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [HEADER, *body]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [HEADER, *body]]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)

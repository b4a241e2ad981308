"""What differs between trec_eval 9.0.8 and 10.0 in the measures and options we reproduce.

Read from the two releases' source (usnistgov/trec_eval tags v9.0.8 and v10.0) and checked
against the binaries built from it (tests/test_trec_eval_binaries.py):

- 9.0.8 stores a run's scores as C `float` (`form_res_rels.c`: `float sim`), so scores that
  are equal in single precision tie and are ordered by docno; 10.0 keeps `double`.
- 10.0 loops over the qrels topics. Under `-c` a judged topic the run lacks is evaluated as
  an empty ranking and printed under `-q` (num_ret 0, num_rel R, every other value 0);
  without `-c` such a topic stops trec_eval with exit status 4 and the (misworded) message
  "result qid 'N' not found in qrels", after the per-topic lines of the topics before it.
  9.0.8 skips the topic silently. Run-only topics are ignored by both.
- 10.0 reads the run from standard input when its name is `-` and skips `#` comment lines
  (we skip them in both modes: 9.0.8 would read them as data).
- 10.0's switch from int truncation to `lround` touches iprec_at_recall and 11pt_avg only,
  which we do not compute; `all_trec` gains unj, rbp and rbp_resid (not computed here).
"""

from __future__ import annotations

import numpy as np

V908 = "9.0.8"
V10 = "10.0"
VERSIONS = (V908, V10)
DEFAULT = V908  # pytrec_eval embeds 9.0.x, and 10.0 stops on any topic a run lacks

EXIT_MISSING_TOPIC = 4  # trec_eval 10.0's exit status for a judged topic absent from the run


def check(version: str) -> str:
    """The version if we reproduce it, else a ValueError naming the ones we do."""
    if version not in VERSIONS:
        raise ValueError(f"trec_eval version {version!r}: choose one of {', '.join(VERSIONS)}")
    return version


def ranking_scores(scores: np.ndarray, version: str) -> np.ndarray:
    """float64 scores as the given release compares them (9.0.8: rounded to float32)."""
    scores = np.asarray(scores)
    if version == V908 and scores.dtype != np.float32:
        with np.errstate(over="ignore"):  # C's double -> float conversion gives inf too
            return scores.astype(np.float32).astype(np.float64)
    return scores.astype(np.float64, copy=False)


def missing_topic_message(qid: str) -> tuple[str, str]:
    """trec_eval 10.0's stderr line for a judged topic the run lacks, and our explanation."""
    return (
        f"trec_eval: result qid '{qid}' not found in qrels",
        f"cbir trec-eval: judged topic {qid!r} has no result in the run; trec_eval 10.0 stops "
        "here (exit 4) unless -c is given (then it scores 0), 9.0.8 skips it (--compat 9.0.8)",
    )


EXTRA_ALL_TREC = {V10: ("unj", "rbp", "rbp_resid")}  # added to all_trec after "recall"

"""TREC qrels and run files, trec_eval-compatible measures, batch evaluation.

    from evaluation import read_qrels, read_run, evaluate, trec_eval_lines
    ev = evaluate(read_qrels("qrels.txt"), read_run("run.txt"), ["map", "P.10", "ndcg_cut.10"])
    print("\\n".join(trec_eval_lines(ev, per_topic=True)))

In memory, a run can be `{topic: {docno: score}}` or an `ArrayRun` (numpy doc indices and
scores), and judgments a `Qrels` or a `LabelQrels` (relevant = same class label).
"""

from evaluation.errors import EvaluationError, MeasureError, TrecFormatError
from evaluation.evaluate import Evaluation, evaluate
from evaluation.measures import Measure, MeasureSelection, parse_measures
from evaluation.qrels import LabelQrels, Qrels
from evaluation.report import to_json, trec_eval_lines
from evaluation.run import ArrayRun, Run, trec_order
from evaluation.trec_io import read_qrels, read_run
from evaluation.trec_write import write_qrels, write_run

__all__ = [
    "ArrayRun",
    "Evaluation",
    "EvaluationError",
    "LabelQrels",
    "Measure",
    "MeasureError",
    "MeasureSelection",
    "Qrels",
    "Run",
    "TrecFormatError",
    "evaluate",
    "parse_measures",
    "read_qrels",
    "read_run",
    "to_json",
    "trec_eval_lines",
    "trec_order",
    "write_qrels",
    "write_run",
]

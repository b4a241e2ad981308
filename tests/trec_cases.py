"""Inline TREC files for the evaluation tests, each trap named where it is set."""

from __future__ import annotations

# Topic 1: graded 0/1/2; d1, d2, d3 tie at 0.5 (relevant and not), the rank column lies.
# Topic 2: only grade-0 judgments (R = 0). Topic 3: judged, missing from the run.
# Topic 10: docnos "9" and "10" tie; as strings "9" > "10", as numbers 10 > 9.
# Topic 77: in the run only.
QRELS = """\
# comment line
1 0 d1 2
1 0 d2 0
1 0 d3 1
1 0 d4 1
1 0 d9 0
2 0 x 0
2 0 y 0
3 0 m 1
10 0 9 1
10 0 10 0
"""

RUN = """\
1 Q0 d1 1 0.5 tagA
1 Q0 d2 2 0.5 tagA
1 Q0 d3 3 0.5 tagA
1 Q0 d4 4 0.1 tagA
1 Q0 d5 5 0.9 tagA
2 Q0 x 1 1.0 tagA
10 Q0 9 1 1.0 tagA
10 Q0 10 2 1.0 tagA
77 Q0 whatever 1 1.0 tagB
"""
# trec_eval's ranking of topic 1: d5 (not judged), d3 (1), d2 (0), d1 (2), d4 (1).
TOPIC1_GRADES = [-1, 1, 0, 2, 1]

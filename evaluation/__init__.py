"""TREC qrels and run files, trec_eval-compatible measures, batch evaluation."""

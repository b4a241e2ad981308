"""Datasets, vector stores and batch indexing on Ray."""

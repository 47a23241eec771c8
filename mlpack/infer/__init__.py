"""Batch inference jobs: JSONL requests in, one response per line out, in order, resumable.

``run_job(InferOptions(...))`` is the entry point; ``mlpack infer`` is a thin shell over it.
"""

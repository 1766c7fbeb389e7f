"""Evaluation: the hallucination benchmarks VLM papers report, offline, on any model.

``metrics/`` holds pure metric functions, ``benchmarks/`` one adapter per benchmark (its
files → records → :class:`EvalResult`), ``harness`` the generate → score → write path the
``mmpo eval`` commands share, ``compare`` the side-by-side report.
"""

from mmpo.eval.result import EvalResult, load_result, write_result

__all__ = ["EvalResult", "load_result", "write_result"]

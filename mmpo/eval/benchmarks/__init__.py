"""Benchmark adapters: read a benchmark's own files, score them with :mod:`mmpo.eval.metrics`, return an EvalResult."""

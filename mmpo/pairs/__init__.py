"""Preference-data construction from a model (MPO's two pipelines): DropoutNTP and the
correctness pipeline, with batched generation and resumable output."""

from mmpo.pairs.answers import extract_answer, is_correct
from mmpo.pairs.correctness import CorrectnessConfig, correctness
from mmpo.pairs.dropout_ntp import DropoutNTPConfig, dropout_ntp
from mmpo.pairs.inputs import load_prompt_rows

__all__ = [
    "CorrectnessConfig",
    "DropoutNTPConfig",
    "correctness",
    "dropout_ntp",
    "extract_answer",
    "is_correct",
    "load_prompt_rows",
]

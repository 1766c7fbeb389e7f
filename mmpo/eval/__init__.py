"""Evaluation: hallucination metrics (CHAIR, POPE) and image reliance."""

from mmpo.eval.chair import caption_report, chair, mentioned_objects
from mmpo.eval.pope import parse_yes_no, pope_metrics, pope_questions

__all__ = ["caption_report", "chair", "mentioned_objects", "parse_yes_no", "pope_metrics", "pope_questions"]

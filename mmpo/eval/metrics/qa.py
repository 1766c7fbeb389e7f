"""Accuracy of a model's final answers on questions with one ground truth (multiple choice,
numbers, short text), judged by the same rules as MPO's correctness pipeline
(:mod:`mmpo.pairs.answers`), so what training calls correct is what evaluation counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from mmpo.pairs.answers import answers_match, extract_answer


def score_response(
    response: str, ground_truth: str | Sequence[str], *, bare_answers: bool = False
) -> tuple[str | None, bool]:
    """``(answer compared, correct)`` for one response.

    The answer is :func:`~mmpo.pairs.answers.extract_answer`'s (the last ``\\boxed{}`` or
    ``Answer:`` line). A response stating none is wrong and its answer is None, exactly as
    :func:`~mmpo.pairs.answers.is_correct` rules, unless ``bare_answers``: then the whole
    response is compared instead (for prompts like "Answer with the option's letter" whose
    replies are a bare "B"). Several ground truths (a list): any one matching is correct.

    >>> score_response("It has 3 sides.\\nAnswer: 3", "3")
    ('3', True)
    >>> score_response("B", "B"), score_response("B", "B", bare_answers=True)
    ((None, False), ('B', True))
    """
    truths = [ground_truth] if isinstance(ground_truth, str) else list(ground_truth)
    answer = extract_answer(response)
    if answer is None and bare_answers and response.strip():
        answer = response.strip()
    return answer, answer is not None and any(answers_match(answer, t) for t in truths)


def qa_scores(correct: Sequence[bool], stated: Sequence[bool]) -> dict[str, float | int]:
    """Accuracy (a fraction), the count correct, ``n``, and ``no_answer_rate``: the share of
    responses that state no final answer (``stated[i]`` false: no ``\\boxed{}`` / ``Answer:``).

    >>> qa_scores([True, False, False, True], [True, True, False, True])
    {'accuracy': 0.5, 'correct': 2, 'n': 4, 'no_answer_rate': 0.25}
    """
    if len(correct) != len(stated):
        raise ValueError(f"{len(correct)} correctness flags but {len(stated)} stated-answer flags")
    if not correct:
        raise ValueError("no answers to score")
    n = len(correct)
    return {"accuracy": sum(correct) / n, "correct": sum(correct), "n": n, "no_answer_rate": stated.count(False) / n}

"""InternVL's chain-of-thought format, rule by rule: the short-answer suffixes stripped
before asking for reasoning, and the checks a response must pass to be read at all."""

import doctest
import importlib

import pytest

from mmpo.pairs.cot_format import SHORT_ANSWER_SUFFIXES, cot_prompt, parse_response, strip_short_answer_suffix

cot_format = importlib.import_module("mmpo.pairs.cot_format")


@pytest.mark.parametrize("suffix", SHORT_ANSWER_SUFFIXES)
def test_each_short_answer_suffix_is_stripped(suffix):
    assert strip_short_answer_suffix(f"Is the circle red?\n{suffix}") == "Is the circle red?"
    assert strip_short_answer_suffix(f"Is the circle red? {suffix}  ") == f"Is the circle red? {suffix}  "  # only at the very end


def test_the_suffix_list_is_internvls():
    assert SHORT_ANSWER_SUFFIXES == (
        "Answer the question using a single word or phrase.",
        "Answer with the option's letter from the given choices directly.",
        "Please answer Yes or No.",
    )


def test_other_questions_are_untouched():
    assert strip_short_answer_suffix("How many circles?\nAnswer briefly.") == "How many circles?\nAnswer briefly."


def test_cot_prompt_asks_for_reasoning_without_the_direct_answer_request():
    question = "Which shape is red?\nA. circle\nB. star\nAnswer with the option's letter from the given choices directly."
    prompt = cot_prompt(question, "final")
    assert "directly" not in prompt
    assert prompt.startswith("Your task is to answer the question below. Give step by step reasoning")
    assert prompt.endswith("Question:\n\nWhich shape is red?\nA. circle\nB. star")
    boxed = cot_prompt(question, "boxed")
    assert boxed.startswith("Which shape is red?\nA. circle\nB. star\nAnswer the preceding question.")
    assert "'Answer: \\boxed{$FINAL_ANSWER}'" in boxed


def test_a_lone_image_placeholder_leaves_the_instruction():
    assert cot_prompt("<image>\nHow many circles?", "final").endswith("Question:\n\nHow many circles?")
    assert "<image>" not in cot_prompt("How many <image> circles?", "boxed")
    two = cot_prompt("Image-1: <image>\nImage-2: <image>\nWhich has more circles?", "final")
    assert two.endswith("Question:\n\nImage-1: <image>\nImage-2: <image>\nWhich has more circles?")  # kept in place


REASONED = "The red shape is the circle.\nThe circle is option A.\nFinal answer: A"


@pytest.mark.parametrize(
    "text, answer",
    [
        (REASONED, "A"),
        ("Step one.\nStep two.\nFinal Answer: 12 cm", "12 cm"),  # the capitalised label, when the other is absent
        ("Final answer: 3 was my guess.\nOn reflection it is 4.\nFinal answer: 4", "4"),  # split at the last label
        ("Counting.\n\nFinal answer:   7   \n", "7"),  # surrounding spaces and line breaks are stripped
        ("Counting.\nMore.\nFinal answer:", ""),  # an empty answer passes (and never pairs: "" is in everything)
        ("一。\n二。\n答案: 3", "3"),
        ("Reasoning.\nFinal Answer: 3\nNo, wait.\nFinal answer: 5", "5"),  # "Final answer:" is looked for first
    ],
)
def test_final_answer_is_read(text, answer):
    parsed = parse_response(text, "final")
    assert parsed is not None and parsed.answer == answer and parsed.rationale


@pytest.mark.parametrize(
    "text, why",
    [
        ("Final answer: A", "no reasoning and fewer than two line breaks"),
        ("\n\nFinal answer: A", "empty reasoning"),
        ("It is the circle. Final answer: A", "fewer than two line breaks"),
        ("The circle.\nSo A.\nFinal answer: A\nBecause it is red.", "a final answer over more than one line"),
        ("The circle.\nSo A.\nFINAL ANSWER: A", "the label is case-sensitive"),
        ("The circle.\nSo A.\nAnswer: A", "a bare 'Answer:' is not the label"),
        ("Final answer: A\nFinal answer: B\nmore\nFinal answer: C", "the label more than twice"),
        ("The circle is red.\nSo it is A.\nI pick A.", "no label at all"),
    ],
)
def test_format_negatives(text, why):
    assert parse_response(text, "final") is None, why


@pytest.mark.parametrize(
    "text, answer",
    [
        ("So x = 2.\nAnswer: \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{3} first, then \\boxed{4}", "4"),
        ("no box here", "no box here"),  # InternVL: the whole response is the answer
        ("so \\boxed{\\frac{1}{2}", "so \\boxed{\\frac{1}{2}"),  # unbalanced: the whole response too
    ],
)
def test_boxed_answer_is_read(text, answer):
    parsed = parse_response(text, "boxed")
    assert parsed is not None and parsed.answer == answer and parsed.rationale is None


def test_docstring_examples():
    result = doctest.testmod(cot_format)
    assert result.attempted > 0 and result.failed == 0


def test_own_instruction_replaces_internvls_wording():
    import pytest as _pytest

    from mmpo.pairs.correctness import CorrectnessConfig

    config = CorrectnessConfig(instruction="{question} Think step by step.")
    assert config.pair_prompt("How many circles? Answer the question using a single word or phrase.") == \
        "How many circles? Think step by step."  # the short-answer suffix is still stripped
    assert CorrectnessConfig().pair_prompt("How many circles?").endswith("Question:\n\nHow many circles?")
    with _pytest.raises(ValueError, match="--instruction must contain"):
        CorrectnessConfig(instruction="no placeholder")

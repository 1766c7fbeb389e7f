"""Answer extraction and matching rules of the MPO correctness pipeline, case by case."""

import doctest

import pytest

from mmpo.pairs import answers
from mmpo.pairs.answers import answers_match, extract_answer, is_correct, normalize, parse_number


# --------------------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    "text, expected",
    [
        (r"The area is \boxed{12}.", "12"),
        (r"So x = \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\sqrt{\frac{a}{b}}} done", r"\sqrt{\frac{a}{b}}"),
        (r"First \boxed{3}, then correcting: \boxed{5}", "5"),
        ("Reasoning...\nFinal answer: 42", "42"),
        ("Reasoning...\nFINAL ANSWER: 42.", "42"),
        ("Reasoning...\nanswer: (B) blue circle.\nThanks!", "(B) blue circle"),
        ("**Final Answer:** 7", "7"),
        ("**Final Answer**: **7**", "7"),
        ("The final answer is: 9", "9"),
        ("Answer: 3\nHmm, no.\nFinal answer: 4", "4"),
        ("Answer: 3. Final answer: 4", "4"),
        # rule 5: whichever of boxed / labelled line starts later wins
        (r"Final answer: 3 ... wait, \boxed{4}", "4"),
        ("\\boxed{3}\nOn reflection.\nFinal answer: 4", "4"),
        (r"Final answer: \boxed{4}", "4"),
        # empty candidates are skipped in favour of earlier ones
        ("Answer: 5\nFinal answer:", "5"),
        (r"\boxed{6} then \boxed{}", "6"),
        # an unbalanced (truncated) box is not an answer
        ("Answer: 2\nso \\boxed{\\frac{1}{2}", "2"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think the answer is four",
        r"so we get \boxed{\frac{1}{2}",
        r"\boxed{}",
        "Final answer:\n",
        "The answers: are below",  # "answers" is not the label "answer"
    ],
)
def test_extract_answer_none_when_unparseable(text):
    assert extract_answer(text) is None


# --------------------------------------------------------------------------- normalization
@pytest.mark.parametrize(
    "text, expected",
    [
        ('  "New   York." ', "new york"),
        ("'paris'", "paris"),
        ("Answer: A", "a"),
        (r"$\text{(B)}$", "(b)"),
        (r"50\%", "50%"),
        (".5", ".5"),
        ("5!", "5!"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    "text, units, expected",
    [
        ("12", False, 12.0),
        ("-3.5", False, -3.5),
        ("−3", False, -3.0),
        (".25", False, 0.25),
        ("1,234", False, 1234.0),
        ("1,234,567.5", False, 1234567.5),
        ("1/2", False, 0.5),
        ("-3/4", False, -0.75),
        (r"\frac{1}{2}", False, 0.5),
        (r"-\dfrac{3}{4}", False, -0.75),
        ("45%", False, 45.0),
        ("5 cm", False, None),
        ("5 cm", True, 5.0),
        ("5cm^2", True, 5.0),
        ("60 km/h", True, 60.0),
        ("12 dollars", True, 12.0),
        ("1/0", False, None),
        ("1,23", True, None),
        ("2 + 3", True, None),
        ("5 apples and 3 oranges", True, None),
        ("apple", True, None),
        ("", True, None),
    ],
)
def test_parse_number(text, units, expected):
    assert parse_number(text, units=units) == expected


# --------------------------------------------------------------------------- rule 1: letters
LETTER_A = ["A", "(A)", "A.", "A)", "Answer: A", "(a)", "a", "A. the red one", "[A]", "**A**", r"\text{A}"]


@pytest.mark.parametrize("pred", LETTER_A)
@pytest.mark.parametrize("truth", ["A", "(A)", "a"])
def test_letter_forms_match(pred, truth):
    assert answers_match(pred, truth)


@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ("(B) blue circle", "B", True),
        ("B) blue circle", "B", True),
        ("A", "B", False),
        ("(A) red square", "B", False),
        ("Apple", "A", False),  # a word starting with the letter is not the letter
        ("AB", "A", False),
        ("blue circle", "B", False),
        ("", "B", False),
    ],
)
def test_letter_rule(pred, truth, expected):
    assert answers_match(pred, truth) is expected


def test_letter_rule_only_applies_to_single_letter_truths():
    assert not answers_match("A", "apple")
    assert answers_match("Apple.", "apple")


# --------------------------------------------------------------------------- rule 2: yes/no
@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ("Yes.", "yes", True),
        ("yes", "Yes", True),
        ("YES, there is", "yes", True),
        ("No", "no", True),
        ("no.", "No.", True),
        ("No, there isn't.", "no", True),
        ("Yes", "no", False),
        ("No", "yes", False),
        ("Not really", "no", False),
        ("Nope", "no", False),
        ("Yesterday", "yes", False),
        ("Maybe", "yes", False),
    ],
)
def test_yes_no_rule(pred, truth, expected):
    assert answers_match(pred, truth) is expected


# --------------------------------------------------------------------------- rule 3: numbers
@pytest.mark.parametrize(
    "pred, truth",
    [
        ("12", "12"),
        ("12.0", "12"),
        ("1,234", "1234"),
        ("1234", "1,234"),
        ("5 cm", "5"),
        ("$12", "12"),
        (r"\$12", "12"),
        ("12 dollars", "12"),
        ("45%", "45"),
        ("45", "45%"),
        (r"45\%", "45"),
        ("1/2", "0.5"),
        (r"\frac{1}{2}", "0.5"),
        ("0.5", "1/2"),
        ("0.5", r"\frac{1}{2}"),
        ("-7", "-7"),
        ("−7", "-7"),
        (r"-\frac{1}{4}", "-0.25"),
        ("3.14", "3.14159"),  # within 1e-3 relative
        ("0.3333", "1/3"),
        ("0", "0"),
        ("0.0", "-0"),
        ("1000.9", "1000"),
    ],
)
def test_numbers_match(pred, truth):
    assert answers_match(pred, truth)


@pytest.mark.parametrize(
    "pred, truth",
    [
        ("12", "120"),
        ("120", "12"),
        ("-5", "5"),
        ("3.1", "3.14159"),
        ("1001.1", "1000"),  # just outside 1e-3 relative
        ("0.001", "0"),  # zero only matches zero
        ("0.45", "45%"),  # percent is stripped, not divided by 100
        ("twelve", "12"),
        ("5 apples and 3 oranges", "5"),
        ("2 + 3", "5"),
        ("", "5"),
    ],
)
def test_numbers_mismatch(pred, truth):
    assert not answers_match(pred, truth)


def test_units_are_only_stripped_from_the_prediction():
    """A ground truth with a unit is text, not a number, and needs an exact match."""
    assert not answers_match("5", "5 cm")
    assert answers_match("5 CM", "5 cm")


# --------------------------------------------------------------------------- rule 4: exact text
@pytest.mark.parametrize(
    "pred, truth, expected",
    [
        ("Paris", "paris", True),
        ("  New   York. ", "new york", True),
        ('"triangle"', "Triangle", True),
        ("'circle'.", "circle", True),
        ("red circle", "circle", False),
        ("circles", "circle", False),
        ("x^2 + 1", "x^2+1", False),  # no algebraic equivalence, only whitespace collapsing
        (r"\text{blue}", "blue", True),
    ],
)
def test_exact_text_rule(pred, truth, expected):
    assert answers_match(pred, truth) is expected


# --------------------------------------------------------------------------- is_correct
@pytest.mark.parametrize(
    "response, truth, expected",
    [
        ("Counting the circles gives twelve.\nFinal answer: 12", "12", True),
        ("Counting the circles gives twelve.\nFinal answer: 12", "120", False),
        (r"The ratio is \boxed{\frac{1}{2}}.", "0.5", True),
        (r"Final answer: 3 ... wait, \boxed{4}", "4", True),
        (r"Final answer: 3 ... wait, \boxed{4}", "3", False),
        ("The blue one matches.\nAnswer: (B) blue circle.", "B", True),
        ("The blue one matches.\nAnswer: (B) blue circle.", "A", False),
        ("Looking closely...\n**Final Answer:** Yes, there is a cat.", "yes", True),
        ("Each side is 5.\nFinal answer: 5 cm", "5", True),
        ("I believe it is 12", "12", False),  # unparseable: a format negative
        ("", "A", False),
        ("Answer: A", "apple", False),
    ],
)
def test_is_correct(response, truth, expected):
    assert is_correct(response, truth) is expected


def test_docstring_examples():
    result = doctest.testmod(answers)
    assert result.attempted > 0 and result.failed == 0

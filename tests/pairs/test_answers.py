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


# --------------------------------------------------------------------------- LaTeX answers
@pytest.mark.parametrize(
    "pred, truth",
    [
        # units, plain or wrapped, with powers: ignored in the prediction when the truth is a number
        (r"5\text{ cm}", "5"),
        (r"5\,\mathrm{m}", "5"),
        (r"5\text{ cm}^2", "5"),
        (r"5\mathrm{cm}^{2}", "5"),
        ("5 cm^2", "5"),
        # degree signs: every spelling is 30°, and ° is ignored like %
        (r"30^\circ", "30"),
        (r"30^{\circ}", "30"),
        ("30°", "30"),
        ("30 degrees", "30"),
        (r"30\degree", "30"),
        ("30", "30°"),
        (r"30^\circ", "30 degrees"),
        # fractions by value
        (r"\dfrac{1}{2}", "1/2"),
        (r"\tfrac{3}{4}", "0.75"),
        (r"\frac12", "0.5"),  # LaTeX's brace-less form
        (r"\frac{ 3 }{ 4 }", "0.75"),
        (r"\frac{-1}{2}", "-0.5"),
        (r"-\frac{-1}{2}", "0.5"),
        (r"\dfrac{\pi}{2}", r"\frac{\pi}{2}"),  # not a number: equal as text once \dfrac is \frac
        # wrappers, nested too
        (r"\text{Paris}", "paris"),
        (r"\textbf{\text{(B)}}", "B"),
        (r"\operatorname{blue}", "blue"),
        # \left( \right), spaces inside brackets and after commas of a tuple / interval
        (r"\left( 1, 2 \right)", "(1, 2)"),
        (r"\left(1,2\right)", "(1, 2)"),
        (r"\left[ 0, 1 \right)", "[0,1)"),
        # thousands separators, \% and \$
        (r"1{,}000", "1000"),
        (r"1\,000", "1000"),
        ("1000", "1{,}000"),
        (r"12{,}345.5", "12345.5"),
        (r"50\%", "50"),
        (r"\$1{,}200", "1200"),
        # math delimiters around the whole answer
        (r"\(30^\circ\)", "30"),
        (r"$30^\circ$", "30"),
        (r"\[\frac{1}{2}\]", "0.5"),
    ],
)
def test_latex_answers_match(pred, truth):
    assert answers_match(pred, truth)


@pytest.mark.parametrize(
    "pred, truth",
    [
        (r"\frac{1}{2}", "2"),  # the denominator is not the answer
        (r"\frac{1}{2}", "12"),  # nor are the digits run together
        (r"30^\circ", "3"),  # the degree sign is not a digit
        (r"30^{\circ}", "300"),
        (r"50\%", "0.5"),  # percent is stripped, not divided by 100
        (r"1\frac{1}{2}", "1.5"),  # mixed numbers are not read
        ("1, 234", "1234"),  # a list, not a thousands separator
        (r"2^{10}", "2"),  # a power is not a unit
        (r"5\text{ cm}", "5 m"),  # a unit in the truth makes it text
    ],
)
def test_latex_answers_mismatch(pred, truth):
    assert not answers_match(pred, truth)


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"30^{\circ}", "30°"),
        ("30 Degrees", "30°"),
        (r"\dfrac12", r"\frac{1}{2}"),
        (r"5\,\text{cm}^{2}", "5 cm^2"),
        (r"1{,}000", "1,000"),
        (r"\textbf{\text{A}}", "a"),
        (r"Answer: \(x\)", "x"),
    ],
)
def test_normalize_latex(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize(
    "response, truth, expected",
    [
        (r"So the angle is \boxed{30^\circ}.", "30", True),
        (r"So the angle is \boxed{30^\circ}.", "3", False),
        (r"The length is \boxed{\dfrac{1}{2}\text{ m}}", "0.5", True),
        (r"The length is \boxed{\dfrac{1}{2}\text{ m}}", "2", False),
        (r"Total: \boxed{\$1{,}200}", "1200", True),
        (r"The point is \boxed{\left( 3, -1 \right)}", "(3,-1)", True),
    ],
)
def test_is_correct_latex(response, truth, expected):
    assert is_correct(response, truth) is expected


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

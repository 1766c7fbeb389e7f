"""Answer matching for MPO's correctness-based preference pairs.

MPO (Wang et al. 2024, "Enhancing the Reasoning Ability of Multimodal Large Language
Models via Mixed Preference Optimization", arXiv 2411.10442) builds pairs by sampling many
chain-of-thought responses, extracting each final answer and comparing it with the ground
truth: correct responses become *chosen*, wrong ones *rejected*, and responses with no
parseable answer are format negatives. This module holds those rules, as pure functions:

* :func:`extract_answer` finds the final answer (last ``\\boxed{...}`` or ``Answer:`` line);
* :func:`answers_match` compares an extracted answer with the ground truth, trying in turn
  multiple-choice letters, yes/no, numbers (relative tolerance), then normalized text;
* :func:`is_correct` does both.
"""

from __future__ import annotations

import re

REL_TOL = 1e-3  # numbers match when |pred − truth| <= REL_TOL·|truth|

_BOXED = re.compile(r"\\boxed\s*\{")
_LABEL = re.compile(r"\b(?:final\s+)?answer(?:\s+is)?\s*\**\s*:", re.IGNORECASE)
_DECOR = re.compile(r"^[\s*]+|[\s*.]+$")  # markdown bold and a trailing period
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_PREFIX = re.compile(r"^(?:final\s+)?answer\s*:\s*", re.IGNORECASE)
_EDGES = re.compile(r"^[\s'\"`*$]+|[\s'\"`*$.,;:?]+$")
_LETTER_TRUTH = re.compile(r"\(?([a-z])\)?")
_LETTER_PRED = re.compile(r"\(([a-z])\)|\[([a-z])\]|([a-z])(?:[.):,]|$)")
_YES_NO = re.compile(r"(yes|no)\b")
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_VALUE = re.compile(
    rf"(?P<sign>[-+−]?)\s*(?:\\[dt]?frac\{{(?P<fn>{_NUM})\}}\{{(?P<fd>{_NUM})\}}"
    rf"|(?P<n>{_NUM})(?:\s*/\s*(?P<d>{_NUM}))?)\s*%?"
)
_UNITS = re.compile(r"(?:(?:[^\W\d]|°)[\w^/.]*\s*)*")  # words like "cm", "km/h", "cm^2"


def _boxed(text: str) -> list[tuple[int, str]]:
    """``(position, content)`` of every complete ``\\boxed{...}``, braces balanced.

    >>> _boxed(r"so \\boxed{\\frac{1}{2}}")
    [(3, '\\\\frac{1}{2}')]
    """
    found = []
    for match in _BOXED.finditer(text):
        depth, end = 1, match.end()
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        if depth == 0:
            found.append((match.start(), text[match.end() : end - 1]))
    return found


def _labelled(text: str) -> list[tuple[int, str]]:
    """``(position, rest of line)`` after every ``Final answer:`` / ``Answer:`` label.

    >>> _labelled("Answer: 3\\n**Final Answer:** 4")
    [(0, ' 3'), (12, '** 4')]
    """
    found = []
    for match in _LABEL.finditer(text):
        end = text.find("\n", match.end())
        found.append((match.start(), text[match.end() : None if end < 0 else end]))
    return found


def extract_answer(text: str) -> str | None:
    """The final answer of a response, or None when it states none (a format negative).

    The candidate starting last in the text wins, whether the last ``\\boxed{...}`` or the
    rest of the last ``Final answer:`` / ``Answer:`` line (case-insensitive). Markdown
    ``**``, surrounding whitespace and a trailing period are stripped; empty candidates
    are skipped.

    >>> extract_answer(r"Final answer: 3 ... wait, \\boxed{4}")
    '4'
    >>> extract_answer("**Final Answer:** (B) blue circle.")
    '(B) blue circle'
    >>> extract_answer("I think it is four") is None
    True
    """
    candidates = [(pos, _DECOR.sub("", raw)) for pos, raw in _boxed(text) + _labelled(text)]
    candidates = [c for c in candidates if c[1]]
    return max(candidates)[1] if candidates else None


def normalize(text: str) -> str:
    """Lower-case, whitespace-collapsed text without wrappers, prefixes and edge punctuation.

    Unwraps ``\\text{...}``-style macros, unescapes ``\\%`` and ``\\$``, drops an
    ``Answer:`` prefix, leading quotes/``$``/``*`` and trailing quotes/``$``/``*``/``.,;:?``.

    >>> normalize('  "New   York." ')
    'new york'
    >>> normalize(r"Answer: $\\text{(A)}$")
    '(a)'
    """
    text = _WRAPPER.sub(r"\1", text).replace("\\%", "%").replace("\\$", "$")
    text = _PREFIX.sub("", _EDGES.sub("", text))
    return " ".join(_EDGES.sub("", text).lower().split())


def parse_number(text: str, *, units: bool = False) -> float | None:
    """The value of a normalized number, fraction, ``\\frac{a}{b}`` or percent; else None.

    Thousands separators are dropped and a ``%`` is ignored (``45%`` is 45). With
    ``units=True`` trailing words without digits (``cm``, ``dollars``) are allowed too.

    >>> parse_number("1,234.5"), parse_number(r"-\\frac{1}{2}"), parse_number("45%")
    (1234.5, -0.5, 45.0)
    >>> parse_number("5 cm"), parse_number("5 cm", units=True)
    (None, 5.0)
    """
    match = _VALUE.match(text)
    if match is None:
        return None
    rest = text[match.end() :].strip()
    if rest and not (units and _UNITS.fullmatch(rest)):
        return None
    num, den = (match["fn"], match["fd"]) if match["fn"] else (match["n"], match["d"] or "1")
    den_value = float(den.replace(",", ""))
    if den_value == 0:
        return None
    value = float(num.replace(",", "")) / den_value
    return -value if match["sign"] in ("-", "−") else value


def _letter(pred: str) -> str | None:
    """The option letter a normalized prediction names: ``a``, ``(a)``, ``a)``, ``a. text``.

    >>> _letter("(b) blue circle"), _letter("apple")
    ('b', None)
    """
    match = _LETTER_PRED.match(pred)
    return next((g for g in match.groups() if g), None) if match else None


def answers_match(pred: str, truth: str) -> bool:
    """Whether an extracted answer matches the ground truth.

    The ground truth decides the rule: a single letter (optionally in parentheses) is a
    multiple-choice option; ``yes``/``no`` compares the prediction's first word; a plain
    number (fraction, ``\\frac``, percent, thousands separators allowed, no units) compares
    values within :data:`REL_TOL`, units in the prediction ignored; anything else is a
    case- and whitespace-insensitive exact match after :func:`normalize`.

    >>> answers_match("(B) blue circle", "B"), answers_match("A", "apple")
    (True, False)
    >>> answers_match("YES, there is", "yes"), answers_match("$12", "12.0")
    (True, True)
    """
    pred, truth = normalize(pred), normalize(truth)
    if letter := _LETTER_TRUTH.fullmatch(truth):
        return _letter(pred) == letter[1]
    if truth in ("yes", "no"):
        said = _YES_NO.match(pred)
        return said is not None and said[1] == truth
    if (expected := parse_number(truth)) is not None:
        got = parse_number(pred, units=True)
        return got is not None and abs(got - expected) <= REL_TOL * abs(expected)
    return pred == truth


def is_correct(response: str, ground_truth: str) -> bool:
    """Whether a full response's final answer matches the ground truth (no answer: False).

    >>> is_correct("The circles number 12.\\nFinal answer: 12", "120")
    False
    >>> is_correct(r"... so the area is \\boxed{\\frac{1}{2}}", "0.5")
    True
    """
    pred = extract_answer(response)
    return pred is not None and answers_match(pred, ground_truth)

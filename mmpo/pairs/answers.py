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

What the matcher accepts, on either side unless said otherwise:

* LaTeX wrappers and spacing: ``\\text{...}``, ``\\textbf``, ``\\mathrm``, ``\\mathbf``,
  ``\\operatorname`` … are unwrapped; ``\\left`` / ``\\right`` (and ``\\big``-style sizes),
  ``\\displaystyle``, ``\\,`` ``\\;`` ``\\quad`` ``~`` and ``$``, ``\\(...\\)``, ``\\[...\\]``
  delimiters are dropped, so ``\\left( 1, 2 \\right)`` equals ``(1,2)``;
* fractions: ``\\frac{a}{b}``, ``\\dfrac``, ``\\tfrac``, ``\\frac12``, ``a/b``, signs inside or
  outside, compared by value with decimals (``\\frac{1}{2}`` = ``0.5`` ≠ ``2``);
* numbers: thousands separators ``1,000`` / ``1{,}000`` / ``1\\,000``; ``\\%`` and ``%`` are
  ignored (``45\\%`` = ``45``, not ``0.45``); ``$`` / ``\\$`` are dropped; values match within
  a relative 1e-3;
* degrees: ``30^\\circ``, ``30^{\\circ}``, ``30\\degree``, ``30°`` and ``30 degrees`` are all
  ``30°`` and, like ``%``, the sign is ignored (``30^\\circ`` = ``30``, ≠ ``3``);
* units, in the prediction only: trailing words after a number, plain or in ``\\text{}`` /
  ``\\mathrm{}``, with powers (``5\\text{ cm}^2``, ``60 km/h``) are ignored when the ground
  truth is a plain number; a ground truth with a unit (``5 cm``) is compared as text;
* option letters (``B``, ``(B)``, ``B.``, ``\\text{(B)}``, ``(B) blue``), yes/no by the first
  word, and otherwise case- and whitespace-insensitive exact text.
"""

from __future__ import annotations

import re

REL_TOL = 1e-3  # numbers match when |pred − truth| <= REL_TOL·|truth|

_BOXED = re.compile(r"\\boxed\s*\{")
_LABEL = re.compile(r"\b(?:final\s+)?answer(?:\s+is)?\s*\**\s*:", re.IGNORECASE)
_DECOR = re.compile(r"^[\s*]+|[\s*.]+$")  # markdown bold and a trailing period
_WRAPPER = re.compile(r"\\(?:text(?:bf|rm|it|sf|tt|normal)?|math(?:rm|bf|it|sf|tt)|mbox|operatorname)\s*\{([^{}]*)\}")
_MATH_DELIMS = re.compile(r"^\s*\\[(\[]|\\[)\]]\s*$")  # \( … \) and \[ … \] around the whole answer
# LaTeX that changes how an answer looks but not what it says, rewritten in this order.
_LATEX = [
    (re.compile(r"\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])"), ""),  # \left( … \right), \big(
    (re.compile(r"\\displaystyle(?![a-zA-Z])"), ""),
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\frac\s*(\d)\s*(\d)"), r"\\frac{\1}{\2}"),  # \frac12 is \frac{1}{2}
    (re.compile(r"\{,\}"), ","),  # 1{,}000
    (re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))"), ","),  # 1\,000
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])"), "°"),
    (re.compile(r"(?<=\d)\s*degrees?\b", re.IGNORECASE), "°"),
    (re.compile(r"\\(?:[,;:! ]|q?quad(?![a-zA-Z]))|~"), " "),  # LaTeX spacing
    (re.compile(r"\^\{([^{}]*)\}"), r"^\1"),  # cm^{2} is cm^2
]
_BRACKET_SPACE = re.compile(r"(?<=[(\[{])\s+|\s+(?=[)\]}])")
_TUPLE = re.compile(r"[(\[].*[)\]]")
_PREFIX = re.compile(r"^(?:final\s+)?answer\s*:\s*", re.IGNORECASE)
_EDGES = re.compile(r"^[\s'\"`*$]+|[\s'\"`*$.,;:?]+$")
_LETTER_TRUTH = re.compile(r"\(?([a-z])\)?")
_LETTER_PRED = re.compile(r"\(([a-z])\)|\[([a-z])\]|([a-z])(?:[.):,]|$)")
_YES_NO = re.compile(r"(yes|no)\b")
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
_SIGN = r"[-+−]?"
_VALUE = re.compile(
    rf"(?P<sign>{_SIGN})\s*(?:\\[dt]?frac\s*\{{\s*(?P<fsign>{_SIGN})\s*(?P<fn>{_NUM})\s*\}}\s*\{{\s*(?P<fd>{_NUM})\s*\}}"
    rf"|(?P<n>{_NUM})(?:\s*/\s*(?P<d>{_NUM}))?)\s*[%°]?"
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
    """Lower-case, whitespace-collapsed text without LaTeX dressing, prefixes and edge punctuation.

    Unwraps ``\\text{...}``-style macros (nested too), rewrites the LaTeX listed in the module
    docstring (sizing, spacing, ``\\dfrac``, ``{,}``, degree signs), unescapes ``\\%`` and
    ``\\$``, drops an ``Answer:`` prefix, ``\\(...\\)`` / ``\\[...\\]`` delimiters, leading
    quotes/``$``/``*`` and trailing quotes/``$``/``*``/``.,;:?``, and spaces just inside
    brackets; in a bracketed tuple or interval, spaces after commas too.

    >>> normalize('  "New   York." ')
    'new york'
    >>> normalize(r"Answer: $\\text{(A)}$")
    '(a)'
    >>> normalize(r"\\left( 1, 2 \\right)"), normalize(r"30^{\\circ}"), normalize(r"\\dfrac12")
    ('(1,2)', '30°', '\\\\frac{1}{2}')
    """
    unwrapped = 1
    while unwrapped:  # inside out: \\text{\\textbf{A}}
        text, unwrapped = _WRAPPER.subn(r"\1", text)
    for pattern, replacement in _LATEX:
        text = pattern.sub(replacement, text)
    text = text.replace("\\%", "%").replace("\\$", "$")
    text = _PREFIX.sub("", _EDGES.sub("", text))
    text = _EDGES.sub("", _MATH_DELIMS.sub("", text))
    text = _BRACKET_SPACE.sub("", " ".join(text.lower().split()))
    return re.sub(r",\s+", ",", text) if _TUPLE.fullmatch(text) else text


def parse_number(text: str, *, units: bool = False) -> float | None:
    """The value of a normalized number, fraction, ``\\frac{a}{b}``, percent or angle; else None.

    Thousands separators are dropped and a trailing ``%`` or ``°`` is ignored (``45%`` is 45,
    ``30°`` is 30). With ``units=True`` trailing words without digits (``cm``, ``dollars``)
    are allowed too.

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
    negative = (match["sign"] in ("-", "−")) != (match["fsign"] in ("-", "−"))  # -\\frac{-1}{2} is 1/2
    return -value if negative else value


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

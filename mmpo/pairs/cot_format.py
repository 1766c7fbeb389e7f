"""The chain-of-thought format of MPO's correctness pipeline, as InternVL writes and reads it.

InternVL builds MMPR by asking for step-by-step reasoning and a final answer, then reading
the answer back with format rules; a response that breaks them is a *format negative*,
never a chosen one. Each rule here is InternVL's, from ``internvl_chat/tools/`` in
OpenGVLab/InternVL (``mm_reasoning_pipeline/`` is the MPO paper's release,
``mmpr_pipeline/`` and ``reasoning_data_pipeline/`` its later versions):

* :func:`strip_short_answer_suffix`: a question's short-answer instruction
  (:data:`SHORT_ANSWER_SUFFIXES`, InternVL's ``VALID_INSTRUCTIONS``) is cut off before the
  reasoning instruction is added (``VQADataset.__getitem__`` of
  ``mm_reasoning_pipeline/internvl_lmdeploy_correctness.py``; ``multi_modal_get_item`` of
  ``reasoning_data_pipeline/mmpr_data_pipeline_correctness.py``);
* :data:`INSTRUCTIONS`: the prompts, InternVL's ``INSTRUCTION_EN`` ("final") and
  ``INSTRUCTION_BOXED_EN`` ("boxed") in ``reasoning_data_pipeline/utils/constants.py``;
  :func:`cot_prompt` takes a lone ``<image>`` placeholder out, as the same
  ``__getitem__`` functions do;
* :func:`parse_response`: the answer and its format checks, ``extract_answer_from_mpo``
  ("final") and ``extract_answer_from_box`` ("boxed") in
  ``reasoning_data_pipeline/utils/accuracy_reward.py`` (the "final" rules are also
  ``parse_answer`` of ``mmpr_pipeline/internvl_lmdeploy_correctness_postprocess.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

# InternVL's VALID_INSTRUCTIONS, verbatim: direct-answer requests that would contradict
# "give step by step reasoning".
SHORT_ANSWER_SUFFIXES = (
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "Please answer Yes or No.",
)

# InternVL's INSTRUCTION_EN and INSTRUCTION_BOXED_EN, verbatim; {question} is replaced.
INSTRUCTIONS = {
    "final": (
        "Your task is to answer the question below. Give step by step reasoning before you answer, "
        "and when you're ready to answer, please use the format \"Final answer: ..\"\n\nQuestion:\n\n{question}"
    ),
    "boxed": (
        "{question}\nAnswer the preceding question. The last line of your response should follow this format: "
        "'Answer: \\boxed{$FINAL_ANSWER}' (without quotes), where 'FINAL_ANSWER' is your conclusion based on "
        "the reasoning provided. If you are uncertain or the problem is too complex, make a reasoned guess "
        "based on the information provided. Avoid repeating steps indefinitely—provide your best guess even "
        "if unsure. Think step by step logically, considering all relevant information before answering."
    ),
}

# The answer labels "final" responses are read by, in InternVL's order of preference.
ANSWER_TRIGGERS = ("Final answer:", "Final Answer:", "答案:")


def strip_short_answer_suffix(question: str) -> str:
    """The question without a trailing short-answer instruction (then stripped), as InternVL
    does before asking for reasoning; each suffix of :data:`SHORT_ANSWER_SUFFIXES` is tried
    once, in order.

    >>> strip_short_answer_suffix("Which is red?\\nA. circle\\nB. star\\n"
    ...                           "Answer with the option's letter from the given choices directly.")
    'Which is red?\\nA. circle\\nB. star'
    """
    for suffix in SHORT_ANSWER_SUFFIXES:
        if question.endswith(suffix):
            question = question[: -len(suffix)].strip()
    return question


IMAGE_PLACEHOLDER = "<image>"


def cot_prompt(question: str, style: str, instruction: str | None = None) -> str:
    """The prompt asking for step-by-step reasoning: the question, its short-answer
    suffix stripped, inside InternVL's instruction for ``style`` ("final" or "boxed"), or
    inside ``instruction`` (a template with ``{question}``) for a model tuned on another.
    A lone ``<image>`` placeholder is taken out (``<image>\\n`` first), so the image goes
    where a single image goes, before the text, and not inside the instruction's
    "Question:" (InternVL moves it to the front); several placeholders stay where they are.

    >>> cot_prompt("<image>\\nHow many circles?", "final").endswith("Question:\\n\\nHow many circles?")
    True
    """
    prompt = (instruction or INSTRUCTIONS[style]).replace("{question}", strip_short_answer_suffix(question))
    if prompt.count(IMAGE_PLACEHOLDER) == 1:
        prompt = prompt.replace(IMAGE_PLACEHOLDER + "\n", "").replace(IMAGE_PLACEHOLDER, "")
    return prompt


@dataclass(frozen=True)
class ParsedResponse:
    """A response read as InternVL reads it: the reasoning before the answer (None for the
    "boxed" style, which does not split it off) and the answer text (stripped for "final";
    a box's content as it is for "boxed")."""

    rationale: str | None
    answer: str


def parse_response(text: str, style: str) -> ParsedResponse | None:
    """The answer of a sampled response, or None when it breaks the format (a format negative).

    ``"final"`` (InternVL's ``extract_answer_from_mpo``): the label is ``Final answer:``,
    else ``Final Answer:``, else ``答案:`` (case-sensitive); the response must hold the label
    at most twice and at least two line breaks; it is split at the label's last occurrence;
    the reasoning before it must be non-empty and the answer after it a single line.

    ``"boxed"`` (InternVL's ``extract_answer_from_box``): the content of the last balanced
    ``\\boxed{...}``; with none (or unbalanced), the whole response is the answer, so a
    "boxed" response is never a format negative (InternVL's behaviour, kept).

    >>> parse_response("The circles: 1, 2, 3.\\nSo three.\\nFinal answer: 3", "final")
    ParsedResponse(rationale='The circles: 1, 2, 3.\\nSo three.', answer='3')
    >>> parse_response("Final answer: 3", "final") is None  # no reasoning, no line breaks
    True
    """
    if style == "boxed":
        return ParsedResponse(None, _last_boxed(text))
    trigger = next((t for t in ANSWER_TRIGGERS if t in text), None)
    if trigger is None or text.count(trigger) > 2 or text.count("\n") < 2:
        return None
    rationale, answer = text.rsplit(trigger, 1)
    if not rationale.strip() or "\n" in answer.strip():
        return None
    return ParsedResponse(rationale.strip(), answer.strip())


def _last_boxed(text: str) -> str:
    """The content of the last ``\\boxed{`` when its braces balance, else ``text`` itself.

    >>> _last_boxed(r"so \\boxed{\\frac{1}{2}}."), _last_boxed("no box")
    ('\\\\frac{1}{2}', 'no box')
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return text
    depth, end = 1, start + len("\\boxed{")
    while end < len(text):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start + len("\\boxed{") : end]
        end += 1
    return text

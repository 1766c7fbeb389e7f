"""The one path every benchmark takes: (generate →) score → write.

With a model, a benchmark's own question files become generation rows (``{"id", "image",
"prompt", …}``, images relative to the benchmark's image folder), ``mmpo generate`` answers
them into ``<out>.answers.jsonl`` (resumable: a rerun of the same command picks up where a
killed one stopped), and the answers file is handed to the benchmark's scorer; without a
model the scorer reads the user's answers file. Either way the :class:`EvalResult` is
written as ``<out>`` and ``<out minus .json>.md``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Callable

from mmpo.eval.generate import GenerateFiles, GenerationOptions, generate_answers
from mmpo.eval.result import EvalResult, write_result
from mmpo.io import write_text_atomic


def work_path(out: str, suffix: str) -> str:
    """A file beside the result: ``runs/chair.json`` → ``runs/chair.<suffix>``."""
    return os.path.splitext(out)[0] + "." + suffix


def write_questions(rows: list[dict], path: str) -> str:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def decode_inline_image(data: str, folder: str, name: str, location: str) -> str:
    """Write a base64 image (a ``data:image/…;base64,`` URI or bare base64, as some benchmark
    files ship them) into ``folder`` once; return its file name there."""
    payload = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{location}: field 'image' is neither an image path nor base64 image data") from None
    os.makedirs(folder, exist_ok=True)
    file_name = f"{name}.img"
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
        with open(path + ".tmp", "wb") as f:
            f.write(raw)
        os.replace(path + ".tmp", path)
    return file_name


def generate_for(questions: list[dict], image_root: str, out: str, generation: GenerationOptions) -> str:
    """Answer ``questions`` with the configured model; return the answers file (``<out>.answers.jsonl``)."""
    if not questions:
        raise ValueError("the benchmark's files yield no questions to answer")
    data = write_questions(questions, work_path(out, "questions.jsonl"))
    answers = work_path(out, "answers.jsonl")
    store = generate_answers(GenerateFiles(data, answers, image_root), generation)
    print(store.summary(len(questions), unit="answers"))
    return answers


def answers_or_generate(
    given: str | None, generation: GenerationOptions, out: str, questions: Callable[[], tuple[list[dict], str]],
    *, answers_flag: str, model_needs: str,
) -> str:
    """The answers file to score: the user's (``given``), or — with ``--model`` — the one
    generated for ``questions()`` (its rows and their image folder; built only then, so a
    missing benchmark file fails before any model loads)."""
    if generation.model:
        rows, image_root = questions()
        return generate_for(rows, image_root, out, generation)
    if not given:
        raise ValueError(f"give {answers_flag} (an answers file) or --model with {model_needs}")
    return given


def run(score: Callable[[str], EvalResult], answers: str, out: str, label: str = "") -> EvalResult:
    """Score ``answers`` and write the result; print where it went and the headline figures."""
    result = score(answers)
    if label:
        result.label = label
    paths = write_result(result, out)
    figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.metrics.items())
    print(f"{result.benchmark}: {figures}\nwrote {paths['json']} and {paths['markdown']}")
    return result

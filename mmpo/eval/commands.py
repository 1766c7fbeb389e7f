"""``mmpo generate`` and ``mmpo eval <benchmark>``: argument parsing only, over the Python API.

Each benchmark command has one dataclass of its own options (its field help is the
``--help`` text) and shares :class:`GenerationOptions` for ``--model`` and decoding.
Without ``--model`` a command scores the answers file it is given; with ``--model`` it
builds the questions from the benchmark's own files, generates (resumable) and then scores.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from mmpo.eval.generate import GenerateFiles, GenerationOptions, generate_answers
from mmpo.eval.harness import answers_or_generate, decode_inline_image, run, work_path

COCO_PROMPT = "Please describe this image in detail."
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Common:
    out: str = field(metadata={"help": "Result JSON to write (a Markdown summary goes beside it, .md)."})
    label: str = field(default="", metadata={"help": "Name of the model/run in reports (default: the file name)."})


def _parse(prog: str, argv: list[str], *classes):
    from transformers import HfArgumentParser

    return HfArgumentParser(classes, prog=prog).parse_args_into_dataclasses(argv)


# ---------------------------------------------------------------------------------- generate
def generate_command(argv: list[str]) -> int:
    files, options = _parse("mmpo generate", argv, GenerateFiles, GenerationOptions)
    if not options.model:
        raise ValueError("mmpo generate: --model is required")
    store = generate_answers(files, options)
    print(store.summary(store.inputs, unit="answers"))
    return 0


# ------------------------------------------------------------------------------------- CHAIR
@dataclass
class ChairArgs:
    """``mmpo eval chair``: CHAIR_s / CHAIR_i / recall of captions against COCO annotations."""

    coco_annotations: str = field(metadata={"help": "COCO 2014 annotations folder (instances_/captions_{train,val}2014.json) or one instances JSON."})
    captions: str | None = field(default=None, metadata={"help": "Answers: JSON list or JSONL of {image_id, caption} (not needed with --model)."})
    coco_captions: list[str] = field(default_factory=list, metadata={"help": "Reference caption JSON(s) (default: captions_*2014.json in the annotations folder)."})
    image_id_key: str = field(default="image_id", metadata={"help": "Field holding the COCO image id (or file name)."})
    caption_key: str = field(default="caption", metadata={"help": "Field holding the caption ('text' and 'answer' are read too)."})
    coco_images: str | None = field(default=None, metadata={"help": "With --model: the COCO val2014 image folder to sample from."})
    num_images: int = field(default=500, metadata={"help": "With --model: how many images to caption (sampled with --sample_seed)."})
    sample_seed: int = field(default=0, metadata={"help": "With --model: seed of the image sample."})
    prompt: str = field(default=COCO_PROMPT, metadata={"help": "With --model: the captioning prompt."})


def coco_questions(image_dir: str, n: int, seed: int, prompt: str) -> list[dict]:
    """``n`` images of a COCO image folder drawn with ``seed`` (sorted names, then sampled)."""
    from mmpo.eval.benchmarks.coco_chair import coco_image_id

    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"COCO image folder not found: {image_dir}")
    names = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise ValueError(f"{image_dir}: no .jpg/.png images")
    chosen = random.Random(seed).sample(names, min(n, len(names)))
    return [{"id": name, "image": name, "prompt": prompt, "image_id": coco_image_id(name, image_dir, "image")}
            for name in chosen]


def chair_command(argv: list[str], benchmark: str = "chair") -> int:
    from mmpo.eval.benchmarks.coco_chair import evaluate_chair

    args, common, gen = _parse(f"mmpo eval {benchmark}", argv, ChairArgs, Common, GenerationOptions)
    def questions():
        if not args.coco_images:
            raise ValueError("--model needs --coco_images (the COCO val2014 image folder)")
        return coco_questions(args.coco_images, args.num_images, args.sample_seed, args.prompt), args.coco_images

    answers = answers_or_generate(args.captions, gen, common.out, questions, answers_flag="--captions",
                                  model_needs="--coco_images")
    run(lambda path: evaluate_chair(path, args.coco_annotations, args.coco_captions or None,
                                    image_id_key=args.image_id_key, caption_key=args.caption_key, benchmark=benchmark),
        answers, common.out, common.label)
    return 0


# ---------------------------------------------------------------------------- Object HalBench
@dataclass
class ObjectHalBenchArgs:
    """``mmpo eval object-halbench``: CHAIR on Object HalBench's 300 COCO images and prompts."""

    coco_annotations: str = field(metadata={"help": "COCO 2014 annotations folder (instances_/captions_{train,val}2014.json)."})
    answers: str | None = field(default=None, metadata={"help": "Answers JSONL: {image_id, question|prompt, answer|text} (RLAIF-V's layout)."})
    questions: str | None = field(default=None, metadata={"help": "With --model: the benchmark's question JSONL (image_id, question, image as path or base64)."})
    images: str | None = field(default=None, metadata={"help": "With --model: folder the question file's image paths are relative to (default: its folder)."})
    judge_url: str | None = field(default=None, metadata={"help": "Optional: extract each answer's objects with an LLM judge (RLAIF-V's protocol) at this OpenAI-compatible URL."})
    judge_model: str | None = field(default=None, metadata={"help": "Judge model for --judge_url (RLAIF-V used gpt-3.5-turbo-0613)."})
    judge_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the judge's API key."})


def object_halbench_questions(path: str, image_root: str, out: str) -> tuple[list[dict], str]:
    """Generation rows from Object HalBench's question file, and the folder their images are in
    (base64 images are written once to ``<out>.images/``)."""
    from mmpo.data.loaders import read_json_lines
    from mmpo.data.schema import DataError
    from mmpo.eval.benchmarks.coco_chair import coco_image_id

    inline = work_path(out, "images")
    rows, roots = [], set()
    for index, (location, obj) in enumerate(read_json_lines(path)):
        if isinstance(obj, DataError):
            raise obj
        question = obj.get("question", obj.get("prompt"))
        if not isinstance(question, str) or not question.strip():
            raise DataError(location, "question", "is missing or empty", "missing_field")
        image_id = coco_image_id(obj.get("image_id"), location, "image_id")
        image = obj.get("image")
        if not isinstance(image, str) or not image:
            raise DataError(location, "image", "is missing (a path or base64 image data)", "missing_field")
        if os.path.isfile(os.path.join(image_root, image)):
            roots.add("files")
        else:
            image = decode_inline_image(image, inline, f"{index}-{image_id}", location)
            roots.add("inline")
        rows.append({"id": str(obj.get("question_id", index)), "image": image, "prompt": question,
                     "question": question, "image_id": image_id})
    if len(roots) > 1:
        raise ValueError(f"{path}: mixes image paths and inline images; use one kind")
    return rows, (inline if roots == {"inline"} else image_root)


def object_halbench_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.coco_chair import evaluate_chair

    args, common, gen = _parse("mmpo eval object-halbench", argv, ObjectHalBenchArgs, Common, GenerationOptions)
    def questions():
        if not args.questions:
            raise ValueError("--model needs --questions (Object HalBench's question file)")
        root = args.images or os.path.dirname(os.path.abspath(args.questions))
        return object_halbench_questions(args.questions, root, common.out)

    answers = answers_or_generate(args.answers, gen, common.out, questions, answers_flag="--answers",
                                  model_needs="--questions")
    extractor = None
    if args.judge_url:
        from mmpo.eval.benchmarks.object_extraction import extract_objects
        from mmpo.eval.judge import JudgeCache, JudgeClient, cache_path_for

        if not args.judge_model:
            raise ValueError("--judge_url needs --judge_model")
        client = JudgeClient(args.judge_url, args.judge_model, api_key_env=args.judge_key_env)
        cache = JudgeCache(cache_path_for(common.out))
        extractor = lambda question, answer: extract_objects(question, answer, client, cache)  # noqa: E731
    run(lambda path: evaluate_chair(path, args.coco_annotations, benchmark="object_halbench", extractor=extractor),
        answers, common.out, common.label)
    return 0


# ------------------------------------------------------------------------------- reliance
@dataclass
class RelianceArgs:
    """``mmpo eval reliance``: how much the model's own answers depend on the image."""

    data: str = field(metadata={"help": "JSONL of {id, image, prompt[, answer]}; rows without an answer are answered by the model first."})
    corruptions: str = field(default="crop,blank,other,noise:0.5", metadata={"help": "Comma-separated m′ to measure with: CoPO's training crop and ones it never saw."})
    corruption_seed: int = field(default=4321, metadata={"help": "Seed of the corruptions (m′ is a function of seed and row)."})
    image_root: str | None = field(default=None, metadata={"help": "Folder image paths are relative to (default: the data file's)."})


def reliance_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.reliance import evaluate_reliance

    args, common, gen = _parse("mmpo eval reliance", argv, RelianceArgs, Common, GenerationOptions)
    if not gen.model:
        raise ValueError("mmpo eval reliance: --model is required (it scores the model's log-likelihoods)")
    run(lambda data: evaluate_reliance(data, gen, args.corruptions.split(","), out=common.out,
                                       seed=args.corruption_seed, image_root=args.image_root),
        args.data, common.out, common.label)
    return 0


# -------------------------------------------------------------------------------------- POPE
@dataclass
class PopeArgs:
    """``mmpo eval pope``: yes/no object probing scored as POPE's evaluate.py does, per split."""

    predictions: str | None = field(default=None, metadata={"help": "JSONL of {question, label, prediction|answer, category}, or POPE's own answer file (with --label_file)."})
    label_file: str | None = field(default=None, metadata={"help": "POPE question file (coco_pope_{split}.json) the --predictions answer file answers, line by line."})
    questions: list[str] = field(default_factory=list, metadata={"help": "With --model: POPE question files (coco_pope_random.json …)."})
    images: str | None = field(default=None, metadata={"help": "With --model: the COCO val2014 image folder the question files name."})


def pope_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.pope import evaluate_pope, pope_questions

    args, common, gen = _parse("mmpo eval pope", argv, PopeArgs, Common, GenerationOptions)
    def questions():
        if not args.questions or not args.images:
            raise ValueError("--model needs --questions (POPE question files) and --images (COCO val2014 folder)")
        return pope_questions(args.questions, args.images), args.images

    predictions = answers_or_generate(args.predictions, gen, common.out, questions, answers_flag="--predictions",
                                      model_needs="--questions and --images")
    label_file = None if gen.model else args.label_file  # generated rows carry their labels
    run(lambda path: evaluate_pope(path, label_file), predictions, common.out, common.label)
    return 0


# ---------------------------------------------------------------------------------------- QA
@dataclass
class QAArgs:
    """``mmpo eval qa``: reasoning / multiple-choice accuracy with the correctness pipeline's matcher."""

    answers: str | None = field(default=None, metadata={"help": "JSONL: response (or prediction / answer), ground_truth (or gt / gt_answer), optional category."})
    questions: str | None = field(default=None, metadata={"help": "With --model: JSONL of {id, image, prompt|question, ground_truth[, category]}."})
    image_root: str | None = field(default=None, metadata={"help": "With --model: folder the question file's images are relative to."})
    bare_answers: bool = field(default=False, metadata={"help": "Judge the whole reply when it states no final answer (\\boxed{} / 'Answer:'); off: such replies are wrong."})


def qa_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.qa import evaluate_qa
    from mmpo.pairs.inputs import load_prompt_rows

    args, common, gen = _parse("mmpo eval qa", argv, QAArgs, Common, GenerationOptions)
    def questions():
        if not args.questions:
            raise ValueError("--model needs --questions")
        root = args.image_root or os.path.dirname(os.path.abspath(args.questions))
        rows = load_prompt_rows(args.questions, image_root=root)
        return [{k: v for k, v in r.fields.items() if k not in ("answer", "response", "prediction")}
                | {"id": r.id, "prompt": r.prompt} for r in rows], root

    answers = answers_or_generate(args.answers, gen, common.out, questions, answers_flag="--answers",
                                  model_needs="--questions")
    run(lambda path: evaluate_qa(path, bare_answers=args.bare_answers), answers, common.out, common.label)
    return 0


# ------------------------------------------------------------------------------------- AMBER
@dataclass
class AmberArgs:
    """``mmpo eval amber``: AMBER's generative and discriminative figures, as its inference.py prints them."""

    amber_dir: str = field(metadata={"help": "AMBER's data/ folder (annotations.json, relation.json, safe_words.txt, metrics.txt, query/) or its checkout."})
    responses: str | None = field(default=None, metadata={"help": "AMBER responses: a JSON list of {id, response} (not needed with --model)."})
    evaluation: str = field(default="a", metadata={"help": "inference.py's --evaluation_type: a (all), g, d, de, da, dr."})
    images: str | None = field(default=None, metadata={"help": "With --model: AMBER's image folder."})
    similarity_score: float = field(default=0.8, metadata={"help": "Word-vector similarity threshold (needs spaCy's en_core_web_lg; without it exact matching, reported as *_exact)."})


def amber_responses(answers: str, path: str) -> str:
    """``mmpo generate``'s answers JSONL as AMBER's responses file ``[{"id", "response"}]``."""
    import json

    from mmpo.pairs.store import read_json_lines_tolerant
    from mmpo.io import write_text_atomic

    rows = [{"id": int(r["id"]), "response": r["answer"]} for r in read_json_lines_tolerant(answers)]
    write_text_atomic(path, json.dumps(sorted(rows, key=lambda r: r["id"]), ensure_ascii=False, indent=1) + "\n")
    return path


def amber_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.amber import amber_questions, evaluate_amber

    args, common, gen = _parse("mmpo eval amber", argv, AmberArgs, Common, GenerationOptions)
    def questions():
        if not args.images:
            raise ValueError("--model needs --images (AMBER's image folder)")
        return amber_questions(args.amber_dir, args.images, args.evaluation), args.images

    responses = answers_or_generate(args.responses, gen, common.out, questions, answers_flag="--responses",
                                    model_needs="--images")
    if gen.model:
        responses = amber_responses(responses, work_path(common.out, "responses.json"))
    run(lambda path: evaluate_amber(path, args.amber_dir, args.evaluation, similarity_score=args.similarity_score),
        responses, common.out, common.label)
    return 0


# ------------------------------------------------------------------------------------ MMHal
@dataclass
class MMHalArgs:
    """``mmpo eval mmhal``: MMHal-Bench rated by an LLM judge with the benchmark's own prompt."""

    judge_url: str = field(metadata={"help": "OpenAI-compatible base URL, up to /v1 (e.g. https://api.openai.com/v1, http://127.0.0.1:8000/v1)."})
    judge_model: str = field(metadata={"help": "Judge model name (the reference used gpt-4-0314; scores compare only under the same judge)."})
    responses: str | None = field(default=None, metadata={"help": "response_template.json with model_answer filled in, or mmpo generate's JSONL (not needed with --model)."})
    template: str | None = field(default=None, metadata={"help": "With --model: MMHal's response_template.json."})
    images: str | None = field(default=None, metadata={"help": "With --model: MMHal's images/ folder (default: images/ beside the template)."})
    judge_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Environment variable holding the API key (unset: no key, for local servers)."})
    judge_cache: str | None = field(default=None, metadata={"help": "Judgement cache (default: <out minus .json>.judge.jsonl); reruns resume from it."})
    judge_timeout: float = field(default=120.0, metadata={"help": "Seconds per judge request."})
    judge_retries: int = field(default=6, metadata={"help": "Retries with back-off on 429 / 5xx / connection errors."})
    judge_max_tokens: int | None = field(default=None, metadata={"help": "max_tokens of each judge reply (default: the server's, as the reference)."})


def mmhal_command(argv: list[str]) -> int:
    from mmpo.eval.benchmarks.mmhal import evaluate_mmhal, mmhal_questions
    from mmpo.eval.judge import JudgeClient, cache_path_for

    args, common, gen = _parse("mmpo eval mmhal", argv, MMHalArgs, Common, GenerationOptions)
    client = JudgeClient(args.judge_url, args.judge_model, api_key_env=args.judge_key_env,
                         timeout=args.judge_timeout, max_retries=args.judge_retries)
    def questions():
        if not args.template:
            raise ValueError("--model needs --template (MMHal's response_template.json)")
        images = args.images or os.path.join(os.path.dirname(os.path.abspath(args.template)), "images")
        return mmhal_questions(args.template, images), images

    responses = answers_or_generate(args.responses, gen, common.out, questions, answers_flag="--responses",
                                    model_needs="--template")
    cache = args.judge_cache or cache_path_for(common.out)
    run(lambda path: evaluate_mmhal(path, client, cache, max_tokens=args.judge_max_tokens), responses, common.out,
        common.label)
    return 0


# --------------------------------------------------------------------------------- report
@dataclass
class ReportArgs:
    """``mmpo eval report R1.json R2.json … --out DIR``: runs side by side (report.md, report.html)."""

    results: list[str] = field(metadata={"help": "Result JSON files written by `mmpo eval` (the first is the baseline)."})
    out: str = field(metadata={"help": "Folder for report.md and report.html."})
    max_examples: int = field(default=50, metadata={"help": "Examples shown per benchmark in the HTML page (0: none)."})


def report_command(argv: list[str]) -> int:
    from mmpo.eval.compare import write_comparison

    if argv and not argv[0].startswith("-"):  # positional result files: `report R1.json R2.json --out DIR`
        files = []
        while argv and not argv[0].startswith("-"):
            files.append(argv.pop(0))
        argv = ["--results", *files, *argv]
    (args,) = _parse("mmpo eval report", argv, ReportArgs)
    paths = write_comparison(args.results, args.out, max_examples=args.max_examples)
    print(f"wrote {paths['markdown']} and {paths['html']}")
    return 0


EVAL_COMMANDS = {
    "chair": chair_command,
    "object-halbench": object_halbench_command,
    "pope": pope_command,
    "amber": amber_command,
    "qa": qa_command,
    "mmhal": mmhal_command,
    "reliance": reliance_command,
    "report": report_command,
}
EVAL_USAGE = """usage: mmpo eval {benchmark} [options]   (mmpo eval {benchmark} --help for its options)

  chair            CHAIR_s / CHAIR_i / recall on COCO captions (OPERA's chair.py variant)
  object-halbench  CHAIR on Object HalBench's 300 images and prompts
  pope             POPE accuracy / precision / recall / F1 / yes-ratio, per split
  amber            AMBER generative (CHAIR, Cover, Hal, Cog) and discriminative scores
  mmhal            MMHal-Bench with an OpenAI-compatible judge
  qa               reasoning / multiple-choice QA accuracy
  reliance         image reliance of a model's own answers under several corruptions
  report           runs side by side: report.md and report.html
"""


def eval_command(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in EVAL_COMMANDS:
        print(EVAL_USAGE.replace("{benchmark}", "BENCHMARK"))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return EVAL_COMMANDS[argv[0]](argv[1:])

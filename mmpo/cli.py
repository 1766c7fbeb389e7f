"""The ``mmpo`` command: a thin layer over the Python API.

    mmpo train --model DIR --data FILE --objective mdpo --output_dir DIR [HF flags…]
    mmpo train --config run.yaml [overrides…]
    mmpo pairs dropout-ntp --model DIR --data prompts.jsonl --out pairs.jsonl [--ratio 0.5]
    mmpo pairs correctness --model DIR --data qa.jsonl --out pairs.jsonl [--samples 32 --max_pairs 15]
    mmpo generate --model DIR [--adapter DIR] --data questions.jsonl --out answers.jsonl
    mmpo eval {chair,object-halbench,pope,amber,mmhal,qa,reliance,report} [options]  (mmpo eval --help)
    mmpo data inspect FILE [--model DIR]   (the format read, skipped rows, rows as the model sees them)
    mmpo tiny-model --family llava --out DIR
    mmpo demo --out DIR [--quick] [--seeds 3] [--ablations]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass, field



def _train(argv: list[str]) -> int:
    import yaml
    from transformers import HfArgumentParser

    from mmpo.train import TrainConfig, train
    from mmpo.train.trainer import TrainingDiverged

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    parser = HfArgumentParser(TrainConfig, prog="mmpo train")
    if known.config:
        with open(known.config, encoding="utf-8") as f:
            defaults = yaml.safe_load(f) or {}
        if not isinstance(defaults, dict):
            raise SystemExit(f"{known.config}: a YAML mapping of option: value is expected")
        parser.set_defaults(**defaults)
    (config,) = parser.parse_args_into_dataclasses(args=rest)
    if not config.output_dir:
        raise SystemExit("mmpo train: --output_dir is required")
    try:
        train(config)
    except TrainingDiverged as err:
        print(f"mmpo train: error: {err}", file=sys.stderr)
        return 3
    return 0


@dataclass
class PairsArgs:
    """What both pair pipelines read and write."""

    model: str = field(metadata={"help": "Model directory or hub id used to generate."})
    data: str = field(metadata={"help": "Input JSONL: id, image, prompt (or question), chosen / answer."})
    out: str = field(metadata={"help": "Output preference JSONL (resumable; `mmpo train` reads it)."})
    image_root: str | None = field(default=None, metadata={"help": "Folder image paths are relative to."})
    image_roots: str | None = field(default=None, metadata={"help": "Comma-separated folders absolute image paths may come from (refused otherwise)."})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu… (default: cuda when available)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the checkpoint."})
    skip_invalid_rows: bool = field(default=False, metadata={"help": "Skip bad input rows instead of stopping at the first; each is recorded in <out>.skipped.jsonl (e.g. pairs.skipped.jsonl)."})
    max_image_pixels: int = field(default=64_000_000, metadata={"help": "Refuse images of more pixels than this, as `mmpo train` does."})
    max_length: int = field(default=2048, metadata={"help": "`mmpo train`'s --max_length: a prompt (image tokens included) that leaves no room for a response under it is refused before generation."})
    max_prompt_length: int | None = field(default=None, metadata={"help": "`mmpo train`'s --max_prompt_length: longer prompts are refused before generation."})

    def __post_init__(self) -> None:
        from mmpo.data.images import PILLOW_MAX_PIXELS, split_roots

        self.image_root_list = split_roots(self.image_roots)
        if not 1 <= self.max_image_pixels <= PILLOW_MAX_PIXELS:
            raise ValueError(f"--max_image_pixels must be between 1 and {PILLOW_MAX_PIXELS:,}, got {self.max_image_pixels}")
        if self.max_length < 2:
            raise ValueError(f"--max_length must be at least 2, got {self.max_length}")
        if self.max_prompt_length is not None and not 1 <= self.max_prompt_length < self.max_length:
            raise ValueError(f"--max_prompt_length must be at least 1 and below --max_length, got {self.max_prompt_length}")


def _pairs(argv: list[str]) -> int:
    import torch
    from transformers import HfArgumentParser

    from mmpo.model.load import load_model, load_processor
    from mmpo.pairs import CorrectnessConfig, DropoutNTPConfig, correctness, dropout_ntp

    pipelines = {"dropout-ntp": (DropoutNTPConfig, dropout_ntp, None), "correctness": (CorrectnessConfig, correctness, "answer")}
    if not argv or argv[0] not in pipelines:
        print(f"usage: mmpo pairs {{{','.join(pipelines)}}} --model DIR --data FILE --out FILE [options]"
              "   (mmpo pairs dropout-ntp --help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    config_cls, pipeline, need = pipelines[argv[0]]
    args, config = HfArgumentParser((PairsArgs, config_cls), prog=f"mmpo pairs {argv[0]}").parse_args_into_dataclasses(argv[1:])
    processor = load_processor(args.model, trust_remote_code=args.trust_remote_code)
    rows = load_pair_inputs(args, config, processor, need)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    model = load_model(args.model, dtype=dtype, trust_remote_code=args.trust_remote_code).to(device)
    store = pipeline(model, processor, rows, args.out, config)
    print(store.summary(len(rows)))
    return 0


def load_pair_inputs(args: PairsArgs, config, processor, need: str | None) -> list:
    """The input rows of ``mmpo pairs``, checked before any generation as `mmpo train` will
    check the pairs made from them: images decoded, the written prompt's length with its
    image tokens. Skipped rows go to ``<out>.skipped.jsonl``."""
    from mmpo.data.collate import PreferenceCollator
    from mmpo.data.schema import DataError
    from mmpo.pairs import load_prompt_rows

    lengths = PreferenceCollator(processor, max_length=args.max_length, max_prompt_length=args.max_prompt_length,
                                 max_image_pixels=args.max_image_pixels)
    skipped_path = args.out.removesuffix(".jsonl") + ".skipped.jsonl"
    try:
        rows = load_prompt_rows(
            args.data, need=need, image_root=args.image_root, image_roots=args.image_root_list, check_images="full",
            max_image_pixels=args.max_image_pixels, skip_invalid=args.skip_invalid_rows,
            check_row=lambda row: lengths.check_prompt(config.pair_prompt(row.prompt), row.images, row.source),
        )
    except DataError as err:
        if err.report is not None:
            err.report.write_skipped(skipped_path)
        raise
    print(rows.report.summary())
    if args.skip_invalid_rows:
        rows.report.write_skipped(skipped_path)
        if rows.report.records:
            print(f"skipped rows are listed in {skipped_path}")
    return rows


def _data(argv: list[str]) -> int:
    from transformers import HfArgumentParser

    from mmpo.data.inspect import InspectConfig, inspect_command

    usage = "usage: mmpo data inspect FILE [--model DIR] [options]   (mmpo data inspect --help)"
    if not argv or argv[0] != "inspect":
        print(usage)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    rest = argv[1:]
    if rest and not rest[0].startswith("-"):  # the FILE positional
        rest = ["--data", rest[0], *rest[1:]]
    parser = HfArgumentParser(
        InspectConfig, prog="mmpo data inspect", usage="mmpo data inspect FILE [--model DIR] [options]",
        description="What mmpo makes of a preference file before anything trains: the format read, row and image "
        "counts, skipped rows and why, and the first rows as the model will see them (FILE may also be given as "
        "--data FILE).",
    )
    (config,) = parser.parse_args_into_dataclasses(rest)
    print(inspect_command(config))
    return 0


def _tiny_model(argv: list[str]) -> int:
    from mmpo.model.tiny import build_tiny_model
    from mmpo.model.tiny_families import BUILDERS, FAMILIES, build_family

    parser = argparse.ArgumentParser(prog="mmpo tiny-model", description="Write a tiny random-init VLM + processor.")
    parser.add_argument("--family", required=True, choices=FAMILIES,
                        help="A model_type; the size options apply to llava, qwen2_vl and idefics3, the others are "
                             "built at the family tests' fixed tiny size.")
    parser.add_argument("--out", required=True, help="Output directory.")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.family in BUILDERS:
        build_family(args.family, args.out, seed=args.seed)
    else:
        build_tiny_model(args.family, args.out, image_size=args.image_size, patch_size=args.patch_size,
                         hidden=args.hidden, layers=args.layers, seed=args.seed)
    print(f"wrote a tiny {args.family} model to {args.out}")
    return 0


def _demo(argv: list[str]) -> int:
    from transformers import HfArgumentParser

    from mmpo.demo import DemoConfig, run_demo, tune
    from mmpo.shapes.study import run_study

    (config,) = HfArgumentParser(DemoConfig, prog="mmpo demo", description=DemoConfig.__doc__).parse_args_into_dataclasses(argv)
    tune(config) if config.tune else run_study(config) if config.study else run_demo(config)
    return 0


def _generate(argv: list[str]) -> int:
    from mmpo.eval.commands import generate_command

    return generate_command(argv)


def _eval(argv: list[str]) -> int:
    from mmpo.eval.commands import eval_command

    return eval_command(argv)


COMMANDS = {"train": _train, "pairs": _pairs, "data": _data, "generate": _generate, "eval": _eval,
            "tiny-model": _tiny_model, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (ValueError, OSError) as err:  # DataError is a ValueError
        print(f"mmpo {argv[0]}: error: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        from mmpo.eval.judge import JudgeError
        from mmpo.eval.nlp import NLPDataMissing

        if not isinstance(err, (JudgeError, NLPDataMissing)):
            raise
        print(f"mmpo {argv[0]}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

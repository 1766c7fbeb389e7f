"""The ``mmpo`` command: a thin layer over the Python API.

    mmpo train --model DIR --data FILE --objective mdpo --output_dir DIR [HF flags…]
    mmpo train --config run.yaml [overrides…]
    mmpo tiny-model --family llava --out DIR
    mmpo demo --out DIR
"""

from __future__ import annotations

import argparse
import sys
import warnings



def _train(argv: list[str]) -> int:
    import yaml
    from transformers import HfArgumentParser

    from mmpo.train import TrainConfig, train

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
    train(config)
    return 0


def _tiny_model(argv: list[str]) -> int:
    from mmpo.model.tiny import FAMILIES, build_tiny_model

    parser = argparse.ArgumentParser(prog="mmpo tiny-model", description="Write a tiny random-init VLM + processor.")
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--out", required=True, help="Output directory.")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build_tiny_model(args.family, args.out, image_size=args.image_size, patch_size=args.patch_size,
                     hidden=args.hidden, layers=args.layers, seed=args.seed)
    print(f"wrote a tiny {args.family} model to {args.out}")
    return 0


def _demo(argv: list[str]) -> int:
    from mmpo.demo import DemoConfig, run_demo

    parser = argparse.ArgumentParser(prog="mmpo demo", description=DemoConfig.__doc__)
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--steps", type=int, default=DemoConfig.steps)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run_demo(DemoConfig(out=args.out, steps=args.steps, seed=args.seed))
    return 0


COMMANDS = {"train": _train, "tiny-model": _tiny_model, "demo": _demo}


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


if __name__ == "__main__":
    sys.exit(main())

"""The accelerate config files in examples/accelerate parse with accelerate's own loader
and turn, through its launcher, into the engine they name (DeepSpeed itself is not
installed here: its files are checked up to the environment the launcher hands it)."""

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "accelerate"


def launch_env(path: Path) -> dict:
    """The environment ``accelerate launch --config_file path -m mmpo.cli train`` gives the processes."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(path), "-m", "mmpo.cli", "train"])
    args, defaults, _ = _validate_launch_command(args)
    if not args.use_deepspeed:
        return prepare_multi_gpu_env(args)
    args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
    return prepare_deepspeed_cmd_env(args)[1]


@pytest.mark.parametrize("name,engine,expected", [
    ("ddp.yaml", "MULTI_GPU", {}),
    ("fsdp.yaml", "FSDP", {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2",
                           "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT"}),
    ("deepspeed_zero2.yaml", "DEEPSPEED", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}),
    ("deepspeed_zero3.yaml", "DEEPSPEED", {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
                                           "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true"}),
])
def test_accelerate_configs_parse_and_name_their_engine(name, engine, expected, monkeypatch):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(EXAMPLES / name))
    assert str(config.distributed_type).endswith(engine) and config.mixed_precision == "bf16"
    env = launch_env(EXAMPLES / name)
    assert {k: env.get(k) for k in expected} == expected
    if engine == "FSDP":  # the plugin the processes build from that environment
        from accelerate.utils import FullyShardedDataParallelPlugin

        for key, value in env.items():
            monkeypatch.setenv(key, value)
        plugin = FullyShardedDataParallelPlugin()
        assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == [
        "ddp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "fsdp.yaml"]

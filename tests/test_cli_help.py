"""Every command's and subcommand's `--help` prints its usage and exits 0 (argparse
%-formats help text, so a stray % in one option's help breaks the whole page)."""

import pytest

from mmpo.cli import COMMANDS, main
from mmpo.eval.commands import EVAL_COMMANDS

GROUPS = {"pairs": ["dropout-ntp", "correctness"], "eval": sorted(EVAL_COMMANDS), "data": ["inspect"]}
LEAVES = [[name] for name in COMMANDS if name not in GROUPS] + [[group, sub] for group, subs in GROUPS.items()
                                                                 for sub in subs]


@pytest.mark.parametrize("command", LEAVES, ids=" ".join)
def test_every_command_help_works(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: mmpo {' '.join(command)}" in capsys.readouterr().out


@pytest.mark.parametrize("group", [[], *([g] for g in GROUPS)], ids=lambda g: " ".join(g) or "mmpo")
def test_every_group_help_lists_its_commands(group, capsys):
    assert main([*group, "--help"]) == 0
    out = capsys.readouterr().out
    expected = GROUPS[group[0]] if group else list(COMMANDS)
    assert all(name in out for name in expected)

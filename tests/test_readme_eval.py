"""The README's evaluation block runs as written on the fixtures (with the judge URL pointed
at a local scripted judge and runs/ in a temporary folder)."""

import os
import re
import shlex

from mmpo.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block() -> list[str]:
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"<!-- eval-fixtures -->\n```bash\n(.*?)```\n<!-- /eval-fixtures -->", text, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_eval_block_runs(tmp_path, monkeypatch, judge):
    judge.reply = lambda body: "The answer is accurate. Rating: 5"
    monkeypatch.chdir(ROOT)
    variables = {}
    for line in readme_block():
        if re.fullmatch(r"\w+=\S+", line):
            name, value = line.split("=", 1)
            variables[name] = value
            continue
        for name, value in variables.items():
            line = line.replace(f"${name}", value)
        line = line.replace("http://127.0.0.1:8000/v1", judge.base_url)
        line = line.replace(" runs/", f" {tmp_path}/runs/").replace(" tiny-llava", f" {tmp_path}/tiny-llava")
        argv = shlex.split(line)
        assert argv[0] == "mmpo"
        assert main(argv[1:]) == 0, line
    for name in ("answers.jsonl", "chair.json", "objhal.json", "pope.json", "amber.json", "mmhal.json", "qa.json",
                 "reliance.json", "report/report.html"):
        assert (tmp_path / "runs" / name).stat().st_size > 0, name

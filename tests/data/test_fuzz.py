"""Seeded, bounded fuzzing of the loaders: byte flips, cut and joined lines, deleted and
retyped fields, applied to a valid preference file (and to its images). Every outcome is
a row loaded, a row skipped and recorded with its file and line, or a DataError naming
file and line; never any other exception."""

import json
import random

import pytest
from PIL import Image

from mmpo.data import DataError, load_preferences
from mmpo.pairs import load_prompt_rows

MUTATIONS = 200
IMAGE_MUTATIONS = 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "img").mkdir()
    Image.new("RGB", (12, 10), (200, 30, 30)).save(root / "img/a.png")
    Image.new("RGB", (10, 12), (30, 30, 200)).save(root / "img/b.jpg")
    rows = [
        {"id": "r1", "image": "img/a.png", "prompt": "What is shown?", "chosen": "A red box.", "rejected": "A cat."},
        {"id": 2, "image": ["img/a.png", "img/b.jpg"], "prompt": "Compare the two images, café.",
         "chosen": "Red, then blue.", "rejected": "Both green.", "topic": {"k": [1, 2.5, None]}},
        {"id": "r3", "image": "img/b.jpg", "prompt": "Colour?", "chosen": "Blue.", "rejected": "Red.",
         "rejected_image": "img/a.png"},
        {"image": "img/a.png", "prompt": "Shape? ✓", "chosen": "A rectangle.", "rejected": "A circle.", "answer": 4},
        {"id": "r5", "image": "img/b.jpg", "question": "Q?", "prompt": "Is it blue?", "chosen": "Yes.", "rejected": "No."},
        {"id": "r6", "image": "img/a.png", "prompt": "Describe.", "chosen": "Red.\nBright.", "rejected": "Dark."},
    ]
    text = "".join(json.dumps(row, ensure_ascii=i % 2 == 0) + "\n" for i, row in enumerate(rows))
    (root / "prefs.jsonl").write_text(text, encoding="utf-8")
    return root


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random damage to a JSON-lines file, and its name."""
    lines = data.split(b"\n")
    k = rng.randrange(len(lines) - 1)  # the last split part is the empty tail
    kind = rng.choice(["flip", "flip", "cut_line", "join_lines", "truncate", "delete_field", "retype_field",
                       "duplicate_line", "delete_line"])
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return kind, bytes(out)
    if kind == "cut_line":
        lines[k] = lines[k][: rng.randrange(len(lines[k]) + 1)]
    elif kind == "join_lines":
        lines[k : k + 2] = [lines[k] + lines[k + 1]]
    elif kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    elif kind == "duplicate_line":
        lines.insert(k, lines[k])
    elif kind == "delete_line":
        del lines[k]
    else:
        row = json.loads(lines[k])
        key = rng.choice(sorted(row))
        if kind == "delete_field":
            del row[key]
        else:
            row[key] = rng.choice([None, 7, -1.5, True, [], {}, "", [None], "../../etc/passwd", "x" * 300])
        lines[k] = json.dumps(row).encode()
    return kind, b"\n".join(lines)


def check_outcome(load, path, name):
    """``load(skip)`` either returns rows with every skip recorded, or raises a DataError
    naming ``path`` (and the line, unless no row was usable at all)."""
    for skip in (False, True):
        try:
            report = load(skip).report
        except DataError as err:
            assert err.location.startswith(str(path)), (name, skip, str(err))
            if err.reason == "empty_dataset":
                records = err.report.records if err.report else []
            else:
                assert not skip, (name, str(err))  # skipping turns every row error into a record
                assert err.location.removeprefix(f"{path}:").isdigit(), (name, str(err))
                continue
        else:
            records = report.records
            assert report.rows_read == report.rows_kept + len(records), name
        for record in records:
            assert record["file"] == str(path) and record["line"] >= 1 and record["reason"], (name, record)
            assert record["message"].startswith(f"{path}:{record['line']}"), (name, record)


def test_fuzzed_data_files_load_skip_or_name_the_line(dataset, tmp_path):
    rng = random.Random(15)
    original = (dataset / "prefs.jsonl").read_bytes()
    path = dataset / "fuzzed.jsonl"
    kinds = set()
    for i in range(MUTATIONS):
        kind, data = mutate(original, rng)
        kinds.add(kind)
        path.write_bytes(data)
        name = f"mutation {i} ({kind})"
        check_outcome(lambda skip: load_preferences(str(path), skip_invalid=skip), path, name)
        check_outcome(lambda skip: load_prompt_rows(str(path), check_images="full", skip_invalid=skip), path, name)
    assert len(kinds) == 8


def test_fuzzed_images_load_or_name_the_row(dataset):
    rng = random.Random(16)
    path = dataset / "prefs.jsonl"
    originals = {name: (dataset / "img" / name).read_bytes() for name in ("a.png", "b.jpg")}
    for i in range(IMAGE_MUTATIONS):
        name = rng.choice(sorted(originals))
        data = bytearray(originals[name])
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        (dataset / "img" / name).write_bytes(bytes(data))
        check_outcome(lambda skip: load_preferences(str(path), skip_invalid=skip), path, f"image mutation {i}")
        (dataset / "img" / name).write_bytes(originals[name])

"""Every loader reads a small fixture of its format; every bad input has a clear message."""

import json
import os

import pytest
from PIL import Image

from mmpo.data import DataError, load_image, load_preferences


def write_image(path, color=(200, 30, 30), size=(16, 16)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")


def good_row(**over):
    row = {"id": "r1", "image": "img/a.png", "prompt": "What is shown?", "chosen": "A red square.", "rejected": "A cat."}
    row.update(over)
    return row


@pytest.fixture
def root(tmp_path):
    write_image(str(tmp_path / "img/a.png"))
    write_image(str(tmp_path / "img/b.png"), (0, 0, 255))
    return tmp_path


def test_jsonl_reads_rows_with_relative_paths_and_lists(root):
    path = root / "prefs.jsonl"
    write_jsonl(path, [good_row(), good_row(id="r2", image=["img/a.png", "img/b.png"], rejected_image="img/b.png", topic="x")])
    data = load_preferences(str(path))
    assert len(data) == 2 and data.report.rows_kept == 2
    first, second = data[0], data[1]
    assert first.images == [str(root / "img/a.png")]
    assert second.images[1].endswith("img/b.png") and second.rejected_images[0].endswith("img/b.png")
    assert second.metadata == {"topic": "x"} and first.source.endswith("prefs.jsonl:1")


def test_mmpr_meta_and_placeholders(root):
    os.makedirs(root / "ann")
    write_jsonl(root / "ann/geo.jsonl", [
        {"image": "a.png", "question": "<image>\nHow many sides?", "chosen": "Four.", "rejected": "Three."},
        {"image": "b.png", "question": "What colour?", "chosen": "Blue.", "rejected": "Red."},
    ])
    meta = {"geo": {"root": "img", "annotation": "ann/geo.jsonl", "repeat_time": 2, "length": 2}}
    (root / "meta.json").write_text(json.dumps(meta))
    data = load_preferences(str(root / "meta.json"))
    assert len(data) == 4
    assert data[0].prompt == "How many sides?" and data[0].images == [str(root / "img/a.png")]
    assert data[0].metadata["source"] == "geo"
    half = dict(meta, geo=dict(meta["geo"], repeat_time=0.5))
    (root / "meta.json").write_text(json.dumps(half))
    assert len(load_preferences(str(root / "meta.json"))) == 1


def test_mmpr_placeholder_count_mismatch(root):
    write_jsonl(root / "ann.jsonl", [{"image": "a.png", "question": "<image><image> Q", "chosen": "x", "rejected": "y"}])
    (root / "meta.json").write_text(json.dumps({"s": {"root": "img", "annotation": "ann.jsonl", "repeat_time": 1}}))
    with pytest.raises(DataError, match=r"ann.jsonl:1: field 'question': has 2 '<image>' placeholders for 1 image"):
        load_preferences(str(root / "meta.json"))


def test_vlfeedback_json(root):
    rows = [{"prompt": "Describe.", "chosen": "A red square.", "rejected": "A dog.", "img_path": "img/a.png"}]
    (root / "mdpo.json").write_text(json.dumps(rows))
    data = load_preferences(str(root / "mdpo.json"))
    assert data[0].chosen == "A red square." and data[0].images[0].endswith("a.png")


def test_hf_dataset_conversational_and_plain():
    datasets = pytest.importorskip("datasets")
    img = Image.new("RGB", (8, 8), (1, 2, 3))
    conv = datasets.Dataset.from_dict({
        "images": [[img]],
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]],
        "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": "A square."}]}]],
        "rejected": [[{"role": "assistant", "content": "A circle."}]],
    })
    data = load_preferences(conv)
    assert data[0].prompt == "What is it?" and data[0].chosen == "A square." and data[0].rejected == "A circle."
    assert load_image(data[0].images[0]).getpixel((0, 0)) == (1, 2, 3)
    plain = datasets.Dataset.from_dict({"images": [[img]], "prompt": ["Q?"], "chosen": ["yes"], "rejected": ["no"]})
    assert load_preferences(plain)[0].prompt == "Q?"


@pytest.mark.parametrize(
    "row, message",
    [
        (good_row(image="img/missing.png"), r"prefs.jsonl:1: field 'image': image file not found"),
        (good_row(chosen="  "), r"prefs.jsonl:1: field 'chosen': is empty"),
        (good_row(rejected="A red square."), r"prefs.jsonl:1: field 'rejected': is identical to 'chosen'"),
        (good_row(prompt=3), r"prefs.jsonl:1: field 'prompt': must be a string, got int"),
        (good_row(image=7), r"prefs.jsonl:1: field 'image': must be a path string"),
        (good_row(image="../outside.png"), r"prefs.jsonl:1: field 'image': image path '../outside.png' escapes"),
        (good_row(image="/etc/passwd"), r"field 'image': image path '/etc/passwd' is absolute and outside the dataset root .* --image_roots"),
        ({k: v for k, v in good_row().items() if k != "rejected"}, r"field 'rejected': is missing"),
        ("{not json", r"prefs.jsonl:1: is not valid JSON"),
        ("[1, 2]", r"prefs.jsonl:1: must be a JSON object, got list"),
    ],
)
def test_bad_rows_name_file_line_field(root, row, message):
    path = root / "prefs.jsonl"
    write_jsonl(path, [row])
    with pytest.raises(DataError, match=message):
        load_preferences(str(path))


def test_truncated_and_non_image_files(root):
    with open(root / "img/a.png", "rb") as f:
        data = f.read()
    (root / "img/trunc.png").write_bytes(data[: len(data) // 2])
    (root / "img/text.png").write_text("not an image")
    write_jsonl(root / "p.jsonl", [good_row(image="img/trunc.png")])
    with pytest.raises(DataError, match=r"p.jsonl:1: field 'image': cannot read image .*trunc.png"):
        load_preferences(str(root / "p.jsonl"))
    write_jsonl(root / "p.jsonl", [good_row(image="img/text.png")])
    with pytest.raises(DataError, match=r"cannot read image .*text.png"):
        load_preferences(str(root / "p.jsonl"))
    # presence-only checking defers the decode
    assert len(load_preferences(str(root / "p.jsonl"), check_images="exists")) == 1


def test_symlink_escaping_root_is_refused(root, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    write_image(str(outside / "x.png"))
    os.symlink(outside / "x.png", root / "img/link.png")
    write_jsonl(root / "p.jsonl", [good_row(image="img/link.png")])
    with pytest.raises(DataError, match="escapes the dataset root"):
        load_preferences(str(root / "p.jsonl"))


def test_skip_mode_counts_every_reason(root):
    path = root / "prefs.jsonl"
    write_jsonl(path, [
        good_row(),
        good_row(chosen=""),
        good_row(image="img/none.png"),
        good_row(rejected="A red square."),
        "{oops",
        good_row(id="ok2"),
    ])
    data = load_preferences(str(path), skip_invalid=True)
    assert [e.id for e in data] == ["r1", "ok2"]
    assert data.report.rows_read == 6
    assert dict(data.report.skipped) == {"empty_chosen": 1, "missing_image": 1, "identical_pair": 1, "bad_json": 1}
    assert "4 of 6" not in data.report.summary() and "2 of 6 rows kept; skipped 4" in data.report.summary()
    assert any("prefs.jsonl:3" in e for e in data.report.errors)


def test_all_rows_bad_is_an_error_even_when_skipping(root):
    write_jsonl(root / "p.jsonl", [good_row(chosen="")])
    with pytest.raises(DataError, match="no usable preference rows"):
        load_preferences(str(root / "p.jsonl"), skip_invalid=True)


def test_invalid_utf8_names_file_line_and_column_and_is_skippable(root):
    path = root / "prefs.jsonl"
    lines = [json.dumps(good_row()).encode(), json.dumps(good_row(id="r2", prompt="caf\u00e9")).encode().replace(
        b"caf\\u00e9", b"caf\xff"), json.dumps(good_row(id="r3")).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataError, match=r"prefs.jsonl:2: is not valid UTF-8 \(byte 0xff at column \d+\)"):
        load_preferences(str(path))
    data = load_preferences(str(path), skip_invalid=True)
    assert [row.id for row in data] == ["r1", "r3"] and dict(data.report.skipped) == {"bad_encoding": 1}
    (root / "list.json").write_bytes(b'[\n{"prompt": "caf\xe9"}\n]')  # Latin-1, in a whole-file JSON format
    with pytest.raises(DataError, match=r"list.json:2: is not valid UTF-8 \(byte 0xe9 at column 16\)"):
        load_preferences(str(root / "list.json"))


def test_hostile_json_lines_are_bad_rows(root):
    path = root / "prefs.jsonl"
    write_jsonl(path, [
        "\ufeff" + json.dumps(good_row()),  # a byte-order mark on line 1 is fine
        "[" * 100_000 + "]" * 100_000,  # nesting deeper than the parser's recursion
        '{"id": "r3", "n": ' + "9" * 5000 + "}",  # an integer longer than Python parses
        json.dumps(good_row(id="r4", prompt="\ud800 oops")),  # an escaped lone surrogate: valid JSON, not text
        json.dumps(good_row(id=None)),
        json.dumps(good_row(id="r6", image=[])),
    ])
    data = load_preferences(str(path), skip_invalid=True)
    assert [row.id for row in data] == ["r1"]
    assert [(r["line"], r["reason"]) for r in data.report.records] == [
        (2, "bad_json"), (3, "bad_json"), (4, "bad_encoding"), (5, "wrong_type"), (6, "missing_field")]


def test_skipped_rows_are_recorded_with_file_line_reason_and_message(root):
    path = root / "prefs.jsonl"
    write_jsonl(path, [good_row(), good_row(id="r2", chosen=""), "{oops", good_row(id="r4", image="img/none.png")])
    data = load_preferences(str(path), skip_invalid=True)
    data.report.write_skipped(str(root / "skipped.jsonl"))
    records = [json.loads(line) for line in open(root / "skipped.jsonl")]
    assert [(r["file"], r["line"], r["field"], r["reason"]) for r in records] == [
        (str(path), 2, "chosen", "empty_chosen"), (str(path), 3, None, "bad_json"),
        (str(path), 4, "image", "missing_image")]
    assert all(r["message"].startswith(f"{path}:{r['line']}") for r in records)
    (root / "list.json").write_text(json.dumps([{"prompt": "p", "chosen": "a", "rejected": "a", "img_path": "img/a.png"}]))
    with pytest.raises(DataError) as err:  # every row skipped: the error carries the report to record
        load_preferences(str(root / "list.json"), skip_invalid=True)
    assert err.value.report.records == [{"file": str(root / "list.json"), "line": None, "field": "rejected",
                                         "reason": "identical_pair", "index": 0,
                                         "message": err.value.report.errors[0]}]


def test_check_row_is_applied_and_skippable(root):
    path = root / "prefs.jsonl"
    write_jsonl(path, [good_row(), good_row(id="long", prompt="x " * 50)])

    def short_prompts(row):
        if len(row.prompt) > 20:
            raise DataError(row.source, "prompt", "is too long", "prompt_too_long")

    with pytest.raises(DataError, match=r"prefs.jsonl:2: field 'prompt': is too long"):
        load_preferences(str(path), check_row=short_prompts)
    data = load_preferences(str(path), check_row=short_prompts, skip_invalid=True)
    assert [row.id for row in data] == ["r1"] and dict(data.report.skipped) == {"prompt_too_long": 1}


def test_oversize_image_is_a_skippable_row(root):
    from tests.data.test_images import png_bytes

    (root / "img/huge.png").write_bytes(png_bytes(30000, 30000, b"\x00" * 100))
    path = root / "prefs.jsonl"
    write_jsonl(path, [good_row(image="img/huge.png"), good_row(id="r2")])
    with pytest.raises(DataError, match=r"prefs.jsonl:1: field 'image': image .*huge.png is too large"):
        load_preferences(str(path))
    data = load_preferences(str(path), skip_invalid=True)
    assert [row.id for row in data] == ["r2"] and dict(data.report.skipped) == {"image_too_large": 1}
    write_jsonl(path, [good_row()])  # 16×16
    with pytest.raises(DataError, match=r"prefs.jsonl:1: field 'image': .* is 16×16 = 256 pixels, over the "
                                        r"--max_image_pixels limit of 100"):
        load_preferences(str(path), max_image_pixels=100)


def test_hf_rows_with_bad_images_or_messages_are_data_errors():
    datasets = pytest.importorskip("datasets")
    img = Image.new("RGB", (8, 8))
    bad_bytes = datasets.Dataset.from_dict({"images": [[{"bytes": b"not an image", "path": None}]], "prompt": ["Q?"],
                                            "chosen": ["yes"], "rejected": ["no"]})
    with pytest.raises(DataError, match=r"\[row 0\]: field 'images': cannot read image \(embedded, 12 bytes\)"):
        load_preferences(bad_bytes)
    bad_content = datasets.Dataset.from_list([{"images": [img], "prompt": [{"role": "user", "content": 5}],
                                               "chosen": "yes", "rejected": "no"}])
    with pytest.raises(DataError, match=r"\[row 0\]: field 'prompt': message content must be text"):
        load_preferences(bad_content)

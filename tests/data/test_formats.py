"""Each public preference set, in the layout it ships in (tests/data/real_layouts.py), is
read as the question, its images and the pair; the reader's decisions are reported."""

import json
import os

import pytest

from mmpo.data import DataError, load_image, load_preferences
from tests.data import real_layouts


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Parquet read through `datasets` is cached under the test's folder, not ~/.cache."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def test_mmpr_from_the_folder_that_holds_it_as_internvl_runs(tmp_path, monkeypatch):
    meta = real_layouts.mmpr(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    data = load_preferences(meta)
    assert data.report.format == "mmpr" and len(data) == 4
    assert data.report.notes == [f"MMPR paths resolved from the working directory {tmp_path}"]
    assert data.report.skipped == {"text_only": 1}  # skipped and recorded, not fatal
    assert data.report.records[0]["line"] == 4 and "text-only" in data.report.records[0]["message"]
    assert data[0].prompt == "what is shown in the image ?" and data[0].id == "scienceqa_correctness/0"
    multi = data[3]
    assert multi.prompt == "Image-1: <image>\nImage-2: <image>\nwhich image shows a red circle ?"
    assert [os.path.basename(p) for p in multi.images] == ["0000.jpg", "0001.jpg"]


def test_mmpr_fallbacks_say_which_folder_was_used(tmp_path, monkeypatch):
    meta = real_layouts.mmpr(str(tmp_path))
    monkeypatch.chdir(os.path.dirname(meta))  # from inside MMPR-v1.2/: the paths resolve from meta.json's parent
    data = load_preferences(meta)
    assert len(data) == 4 and data.report.notes == [f"MMPR paths resolved from meta.json's parent folder {tmp_path}"]
    # v1.0 named its authors' cluster: the longest tail that exists here is used
    entries = json.load(open(meta))
    for entry in entries.values():
        for key in ("root", "annotation"):
            entry[key] = "/mnt/petrelfs/share_data/" + entry[key]
    json.dump(entries, open(meta, "w"))
    monkeypatch.chdir(tmp_path)
    data = load_preferences(meta)
    assert len(data) == 4 and "the tail 'MMPR-v1.2/annotations/" in data.report.notes[0]
    entries["scienceqa_correctness"]["annotation"] = "nowhere/x.jsonl"
    json.dump(entries, open(meta, "w"))
    with pytest.raises(DataError, match=r"meta.json: field 'scienceqa_correctness.annotation': 'nowhere/x.jsonl' "
                                        r"not found \(tried it as written and under the working directory"):
        load_preferences(meta)


def test_hub_parquet_folders_and_files_through_datasets(tmp_path):
    folder = real_layouts.rlaif_v(str(tmp_path))
    data = load_preferences(folder)
    assert data.report.format == "rlaif-v" and len(data) == 4
    assert data[1].prompt == "how many shapes are there ?" and isinstance(data[1].images[0], bytes)  # kept encoded
    assert load_image(data[1].images[0]).size == (32, 32)
    assert data[1].metadata["origin_dataset"] == "OK-VQA"
    one = load_preferences(os.path.join(folder, "RLAIF-V-Dataset_001.parquet"))
    assert [row.chosen for row in one] == real_layouts.CHOSEN[2:]
    import datasets

    datasets.Dataset.from_parquet(os.path.join(folder, "RLAIF-V-Dataset_000.parquet")).save_to_disk(
        str(tmp_path / "saved"))
    saved = load_preferences(str(tmp_path / "saved"))  # its `question` column, after save_to_disk
    assert saved.report.format == "rlaif-v" and saved[0].prompt == real_layouts.QUESTIONS[0]
    trl = load_preferences(real_layouts.trl_formatted(str(tmp_path)))
    assert trl.report.format == "trl" and len(trl) == 3  # the train split only
    assert trl[0].prompt == "what is shown in the image ?" and trl[0].chosen == real_layouts.CHOSEN[0]
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"bad.parquet: cannot be read as parquet"):
        load_preferences(str(tmp_path / "bad.parquet"))


def test_mdpo_json_loses_its_template_and_placeholder(tmp_path):
    data = load_preferences(real_layouts.mdpo(str(tmp_path)))
    assert data.report.format == "mdpo" and [row.prompt for row in data] == real_layouts.QUESTIONS
    assert data.report.notes == ["a vicuna chat template was taken out of 4 prompt(s)"]
    assert load_preferences(real_layouts.mdpo(str(tmp_path / "again")), format="vlfeedback")[0].prompt == \
        real_layouts.QUESTIONS[0]  # what earlier versions called this layout


def test_llamafactory_sharegpt_and_swift_layouts(tmp_path):
    shared = load_preferences(real_layouts.sharegpt(str(tmp_path)))
    assert shared.report.format == "sharegpt" and shared[3].prompt == "is there a red circle ?"
    assert shared[3].chosen == "yes ." and shared[3].images[0].endswith("mllm_demo_data/0003.jpg")
    openai = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<image>What?"}],
               "chosen": {"role": "assistant", "content": "a square ."}, "rejected": "a dog .",
               "images": ["llamafactory/mllm_demo_data/0000.jpg"]}]
    (tmp_path / "openai.json").write_text(json.dumps(openai))  # LLaMA-Factory's OpenAI-style variant
    row = load_preferences(str(tmp_path / "openai.json"))[0]
    assert (row.prompt, row.chosen, row.rejected) == ("What?", "a square .", "a dog .")
    swift = load_preferences(real_layouts.swift(str(tmp_path)))
    assert swift.report.format == "swift" and swift[0].prompt == real_layouts.QUESTIONS[0]  # no system text
    assert swift[0].rejected == real_layouts.REJECTED[0]
    assert load_image(swift[0].images[0]).tobytes() == real_layouts.image(0).tobytes()  # the base64 image itself
    bare = json.loads(open(real_layouts.swift(str(tmp_path / "bare"))).readline())
    bare["images"] = [bare["images"][0].split(",", 1)[1]]  # bare base64, no data: prefix
    (tmp_path / "bare.jsonl").write_text(json.dumps(bare) + "\n")
    assert load_image(load_preferences(str(tmp_path / "bare.jsonl"))[0].images[0]).size == (32, 32)


def test_vlfeedback_is_binarised_best_against_worst_mean_rating(tmp_path):
    data = load_preferences(real_layouts.vlfeedback(str(tmp_path)))
    assert data.report.format == "vlfeedback" and len(data) == 3 and data.report.skipped == {"no_preference": 1}
    row = data[0]  # means: a 11/3, b 5, c (1 + 5) / 2 with "N/A" left out
    assert (row.chosen, row.rejected) == (real_layouts.CHOSEN[0], real_layouts.REJECTED[0])
    assert row.metadata["chosen_model"] == "b" and row.metadata["rejected_score"] == 3.0


def test_absolute_image_paths_need_image_roots(tmp_path):
    images = tmp_path / "elsewhere"
    names = real_layouts.save_images(str(images), 1)
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "swift.jsonl"
    real_layouts.write_jsonl(str(path), [{"messages": [{"role": "user", "content": "<image>what is it ?"},
                                                       {"role": "assistant", "content": "a square ."}],
                                          "rejected_response": "a dog .", "images": [str(images / names[0])]}])
    with pytest.raises(DataError, match=r"swift.jsonl:1: field 'images': image path .* is absolute and outside the "
                                        r"dataset root .*; such paths are refused by default\. Allow them with "
                                        r"--image_roots"):
        load_preferences(str(path))
    assert load_preferences(str(path), image_roots=[str(images)])[0].images == [str(images / names[0])]
    with pytest.raises(DataError, match=r"is absolute and outside .*\(allowed now: "):
        load_preferences(str(path), image_roots=[str(tmp_path / "data")])
    assert len(load_preferences(str(path), image_root=str(tmp_path))) == 1  # absolute, but inside the data root


@pytest.mark.parametrize("row, message", [
    ({"conversations": [{"from": "human", "value": "<image>a"}, {"from": "gpt", "value": "b"},
                        {"from": "human", "value": "c"}], "chosen": {"from": "gpt", "value": "x"},
      "rejected": {"from": "gpt", "value": "y"}, "images": ["i.jpg"]},
     r"\[0\]: field 'conversations': must hold one human"),
    ({"img_path": "i.jpg", "prompt": "USER: <image>\na ASSISTANT: b USER: c ASSISTANT:", "chosen": "x",
      "rejected": "y"}, r"\[0\]: field 'prompt': holds a multi-turn vicuna conversation"),
    ({"img_path": "i.jpg", "prompt": "<image><image> two?", "chosen": "x", "rejected": "y"},
     r"field 'prompt': has 2 '<image>' placeholders for 1 image"),
    ({"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "x"}],
      "rejected_response": "y", "images": ["data:image/png;base64,@@@"]}, r"field 'images': holds base64 image data"),
    ({"messages": [{"role": "user", "content": "<image>q"}, {"role": "assistant", "content": "x"}],
      "rejected_response": "y", "images": ["https://example.com/i.jpg"]}, r"field 'images': is a URL"),
])
def test_bad_rows_of_each_layout_name_the_row_and_field(tmp_path, row, message):
    real_layouts.save_images(str(tmp_path), 1)
    os.rename(tmp_path / "0000.jpg", tmp_path / "i.jpg")
    (tmp_path / "rows.json").write_text(json.dumps([row]))
    with pytest.raises(DataError, match=message):
        load_preferences(str(tmp_path / "rows.json"))


def test_trl_conversational_image_parts_stay_in_place():
    datasets = pytest.importorskip("datasets")
    img = real_layouts.image(0)
    prompt = [{"role": "system", "content": [{"type": "text", "text": "be brief"}]},
              {"role": "user", "content": [{"type": "text", "text": "left: "}, {"type": "image"},
                                           {"type": "text", "text": " right: "}, {"type": "image"},
                                           {"type": "text", "text": " same?"}]}]
    data = load_preferences(datasets.Dataset.from_list([{"images": [img, img], "prompt": prompt, "chosen": "yes",
                                                         "rejected": "no"}]))
    assert data[0].prompt == "left: <image> right: <image> same?"

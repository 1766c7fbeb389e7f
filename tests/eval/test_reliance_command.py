"""`mmpo eval reliance`: per-example reliance under several corruptions, the model's own
answers generated when the data has none."""

import json

import pytest
from PIL import Image

from mmpo.cli import main
from mmpo.shapes.world import make_scene, render


def test_reliance_command(tiny_models, tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (32, 32), (120, 30, 200)).save(tmp_path / "images" / "flat.png")  # blank(m) == m
    rows = [{"id": "flat", "image": "images/flat.png", "prompt": "Describe the image.", "answer": "A purple square."}]
    for i in range(3):
        render(make_scene(i), 32).save(tmp_path / "images" / f"{i}.png")
        rows.append({"id": f"s{i}", "image": f"images/{i}.png", "prompt": "Describe the image."})
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "reliance.json"
    assert main(["eval", "reliance", "--model", tiny_models["llava"], "--data", str(data), "--out", str(out),
                 "--corruptions", "crop,blank,other", "--max_new_tokens", "5", "--device", "cpu"]) == 0
    result = json.loads(out.read_text())
    assert set(result["metrics"]) == {"reliance_crop", "reliance_blank", "reliance_other", "n"}
    by_id = {d["id"]: d for d in result["details"]}
    assert by_id["flat"]["answer"] == "A purple square."           # given answers are kept
    assert by_id["flat"]["reliance"]["blank"] == pytest.approx(0.0, abs=1e-5)  # a flat image is its own blank
    assert len((tmp_path / "reliance.answers.jsonl").read_text().splitlines()) == 3  # the other three generated
    mean_crop = sum(d["reliance"]["crop"] for d in result["details"]) / 4
    assert result["metrics"]["reliance_crop"] == pytest.approx(mean_crop)
    assert main(["eval", "reliance", "--model", tiny_models["llava"], "--data", str(data), "--out", str(out),
                 "--corruptions", "sideways"]) == 1

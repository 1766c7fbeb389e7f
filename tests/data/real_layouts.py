"""Small copies of the public preference sets, each written in the exact layout its hub or
repo ships (file names, folders, columns, prompt text), with shapes-world images.

Every builder takes a folder and returns the path ``mmpo train --data`` is given; MMPR's
is meant to be read from the folder that holds ``MMPR-v1.2/`` (the working directory
InternVL's scripts run in)."""

import base64
import io
import json
import os

from PIL import Image

VICUNA = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions. USER: <image>\n{q} ASSISTANT:")
QUESTIONS = ["what is shown in the image ?", "how many shapes are there ?", "describe the image .",
             "is there a red circle ?"]
CHOSEN = ["a red circle at the top left .", "there are two shapes .", "a blue square in the middle .", "yes ."]
REJECTED = ["a green triangle at the bottom right .", "there is one yellow star .", "a small dog near a house .", "no ."]
COLOURS = [(200, 30, 30), (30, 30, 200), (30, 160, 30), (220, 200, 20)]


def image(i: int) -> Image.Image:
    img = Image.new("RGB", (32, 32), (250, 250, 250))
    img.paste(COLOURS[i % 4], (4 + 4 * i, 4, 16 + 4 * i, 16))
    return img


def png_bytes(i: int) -> bytes:
    buf = io.BytesIO()
    image(i).save(buf, format="PNG")
    return buf.getvalue()


def save_images(folder: str, n: int = 4, ext: str = "jpg") -> list[str]:
    os.makedirs(folder, exist_ok=True)
    names = []
    for i in range(n):
        names.append(f"{i:04d}.{ext}")
        image(i).save(os.path.join(folder, names[-1]))
    return names


def write_jsonl(path: str, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def mmpr(base: str) -> str:
    """MMPR-v1.2 as downloaded: ``MMPR-v1.2/meta.json`` with paths relative to the folder that
    holds ``MMPR-v1.2/``; one source of single-image rows plus a text-only row, one of
    multi-image rows (``Image-1: <image>\\nImage-2: <image>``)."""
    top = os.path.join(base, "MMPR-v1.2")
    names = save_images(os.path.join(top, "images", "ScienceQA"))
    save_images(os.path.join(top, "images", "MMK12"))
    os.makedirs(os.path.join(top, "annotations"))
    rows = [{"image": name, "question": f"<image>\n{q}", "chosen": c, "rejected": r}
            for name, q, c, r in zip(names[:3], QUESTIONS, CHOSEN, REJECTED)]
    rows.append({"question": "what is 2 + 2 ?", "chosen": "4 .", "rejected": "5 ."})  # MMPR has text-only rows
    write_jsonl(os.path.join(top, "annotations", "scienceqa_correctness.jsonl"), rows)
    multi = [{"image": ["0000.jpg", "0001.jpg"],
              "question": "Image-1: <image>\nImage-2: <image>\nwhich image shows a red circle ?",
              "chosen": "the first image .", "rejected": "the second image ."}]
    write_jsonl(os.path.join(top, "annotations", "mmk12_multi_image.jsonl"), multi)
    meta = {
        "scienceqa_correctness": {"root": "MMPR-v1.2/images/ScienceQA",
                                  "annotation": "MMPR-v1.2/annotations/scienceqa_correctness.jsonl",
                                  "data_augment": False, "repeat_time": 1, "length": 4},
        "mmk12_multi_image": {"root": "MMPR-v1.2/images/MMK12",
                              "annotation": "MMPR-v1.2/annotations/mmk12_multi_image.jsonl",
                              "data_augment": False, "repeat_time": 1, "length": 1},
    }
    with open(os.path.join(top, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    return os.path.join(top, "meta.json")


def rlaif_v(base: str) -> str:
    """openbmb/RLAIF-V-Dataset as downloaded: parquet shards at the repo's top level,
    ``image`` an embedded Image, the prompt under ``question``."""
    import datasets

    folder = os.path.join(base, "RLAIF-V-Dataset")
    os.makedirs(folder)
    features = datasets.Features({
        "ds_name": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
        "chosen": datasets.Value("string"), "rejected": datasets.Value("string"),
        "origin_dataset": datasets.Value("string"), "origin_split": datasets.Value("string"),
        "idx": datasets.Value("string"), "image_path": datasets.Value("string"),
    })
    for shard in range(2):
        idx = range(2 * shard, 2 * shard + 2)
        datasets.Dataset.from_dict({
            "ds_name": ["RLAIF-V"] * 2, "image": [{"bytes": png_bytes(i), "path": None} for i in idx],
            "question": [QUESTIONS[i] for i in idx], "chosen": [CHOSEN[i] for i in idx],
            "rejected": [REJECTED[i] for i in idx], "origin_dataset": ["OK-VQA"] * 2,
            "origin_split": ['{"model":"OmniLMM-12B"}'] * 2, "idx": [f"OK-VQA_{i}" for i in idx],
            "image_path": [f"OK-VQA/{i}.jpg" for i in idx],
        }, features=features).to_parquet(os.path.join(folder, f"RLAIF-V-Dataset_{shard:03d}.parquet"))
    return folder


def trl_formatted(base: str) -> str:
    """HuggingFaceH4/rlaif-v_formatted as downloaded: ``data/train-*.parquet`` and
    ``data/test-*.parquet``, conversational ``prompt``/``chosen``/``rejected``, ``images``."""
    import datasets

    folder = os.path.join(base, "rlaif-v_formatted")
    os.makedirs(os.path.join(folder, "data"))
    features = datasets.Features({
        "chosen": [{"content": [{"text": datasets.Value("string"), "type": datasets.Value("string")}],
                    "role": datasets.Value("string")}],
        "rejected": [{"content": [{"text": datasets.Value("string"), "type": datasets.Value("string")}],
                      "role": datasets.Value("string")}],
        "images": datasets.Sequence(datasets.Image()),
        "prompt": [{"content": [{"text": datasets.Value("string"), "type": datasets.Value("string")}],
                    "role": datasets.Value("string")}],
    })

    def rows(idx):
        return {
            "chosen": [[{"role": "assistant", "content": [{"type": "text", "text": CHOSEN[i]}]}] for i in idx],
            "rejected": [[{"role": "assistant", "content": [{"type": "text", "text": REJECTED[i]}]}] for i in idx],
            "images": [[{"bytes": png_bytes(i), "path": None}] for i in idx],
            "prompt": [[{"role": "user", "content": [{"type": "image", "text": None},
                                                     {"type": "text", "text": QUESTIONS[i]}]}] for i in idx],
        }

    datasets.Dataset.from_dict(rows(range(3)), features=features).to_parquet(
        os.path.join(folder, "data", "train-00000-of-00001.parquet"))
    datasets.Dataset.from_dict(rows(range(3, 4)), features=features).to_parquet(
        os.path.join(folder, "data", "test-00000-of-00001.parquet"))
    return folder


def mdpo(base: str) -> str:
    """The mDPO repo's ``data/sample_data.json``: ``img_path``, a Bunny-templated ``prompt``."""
    folder = os.path.join(base, "mdpo", "data")
    names = save_images(os.path.join(folder, "images"))
    rows = [{"img_path": f"images/{name}", "prompt": VICUNA.format(q=q), "chosen": c, "rejected": r}
            for name, q, c, r in zip(names, QUESTIONS, CHOSEN, REJECTED)]
    path = os.path.join(folder, "sample_data.json")
    with open(path, "w") as f:
        json.dump(rows, f, indent=4)
    return path


def sharegpt(base: str) -> str:
    """LLaMA-Factory's sharegpt preference JSON (data/README.md): ``conversations``,
    ``chosen``/``rejected`` as ``{from, value}``, ``images``, a ``system`` column."""
    folder = os.path.join(base, "llamafactory")
    names = save_images(os.path.join(folder, "mllm_demo_data"))
    rows = [{"conversations": [{"from": "human", "value": f"<image>{q}"}],
             "chosen": {"from": "gpt", "value": c}, "rejected": {"from": "gpt", "value": r},
             "images": [f"mllm_demo_data/{name}"], "system": "You are a helpful assistant."}
            for name, q, c, r in zip(names, QUESTIONS, CHOSEN, REJECTED)]
    path = os.path.join(folder, "rlhf_v_demo.json")
    with open(path, "w") as f:
        json.dump(rows, f, indent=2)
    return path


def swift(base: str) -> str:
    """ms-swift's RLHF JSONL: ``messages`` (system, user, chosen assistant),
    ``rejected_response``, ``images`` as base64 data URIs."""
    folder = os.path.join(base, "swift")
    os.makedirs(folder)
    rows = [{"messages": [{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": f"<image>{q}"}, {"role": "assistant", "content": c}],
             "rejected_response": r, "images": ["data:image/png;base64," + base64.b64encode(png_bytes(i)).decode()]}
            for i, (q, c, r) in enumerate(zip(QUESTIONS, CHOSEN, REJECTED))]
    path = os.path.join(folder, "dpo.jsonl")
    write_jsonl(path, rows)
    return path


def vlfeedback(base: str) -> str:
    """Raw VLFeedback rows (MMInstruction/VLFeedback): ``instruction``, ``image``,
    ``completions`` rated on three aspects; the last row's ratings all tie."""
    import datasets

    folder = os.path.join(base, "VLFeedback")
    os.makedirs(folder)

    def completion(model, text, ratings):
        aspects = ("Helpfulness", "Ethical Considerations", "Visual Faithfulness")
        return {"annotations": {a: {"Rating": str(r), "Rationale": "…"} for a, r in zip(aspects, ratings)},
                "model": model, "response": text}

    rows = []
    for i, (q, c, r) in enumerate(zip(QUESTIONS, CHOSEN, REJECTED)):
        tie = i == 3
        rows.append({
            "id": f"vlf-{i}", "instruction": q, "image": {"bytes": png_bytes(i), "path": None}, "models": ["a", "b", "c"],
            "completions": [completion("a", "it is hard to say .", [3, 5, 3] if not tie else [4, 4, 4]),
                            completion("b", c, [5, 5, 5] if not tie else [4, 4, 4]),
                            completion("c", r, [1, 5, "N/A"] if not tie else [4, 4, 4])],
        })
    datasets.Dataset.from_list(rows, features=datasets.Features({
        "id": datasets.Value("string"), "instruction": datasets.Value("string"), "image": datasets.Image(),
        "models": [datasets.Value("string")],
        "completions": [{"annotations": {a: {"Rating": datasets.Value("string"), "Rationale": datasets.Value("string")}
                                         for a in ("Helpfulness", "Ethical Considerations", "Visual Faithfulness")},
                         "model": datasets.Value("string"), "response": datasets.Value("string")}],
    })).to_parquet(os.path.join(folder, "train-00000-of-00001.parquet"))
    return folder


LAYOUTS = {"mmpr": mmpr, "rlaif-v": rlaif_v, "trl": trl_formatted, "mdpo": mdpo, "sharegpt": sharegpt,
           "swift": swift, "vlfeedback": vlfeedback}

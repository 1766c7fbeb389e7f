"""Shared fixtures: tiny models of each family (built once per session) and a small
preference file of shapes-world scenes; a scripted judge server for the eval tests."""

import http.server
import json
import os
import threading
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*torchvision.*")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FAMILIES = ("llava", "qwen2_vl", "idefics3")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    from mmpo.model.tiny import build_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    paths = {}
    for family in FAMILIES:
        paths[family] = str(root / family)
        build_tiny_model(family, paths[family])
    return paths


@pytest.fixture(scope="session")
def pref_file(tmp_path_factory):
    from mmpo.shapes.world import caption, make_scene, render

    root = tmp_path_factory.mktemp("prefs")
    os.makedirs(root / "images")
    with open(root / "pairs.jsonl", "w") as f:
        for i in range(6):
            scene = make_scene(i, scene_id=f"s{i}")
            render(scene, size=32).save(root / "images" / f"s{i}.png")
            row = {"id": scene.id, "image": f"images/s{i}.png", "prompt": "Describe the image.",
                   "chosen": caption(scene.objects), "rejected": "There is a purple star at the top."}
            f.write(json.dumps(row) + "\n")
    return str(root / "pairs.jsonl")


@pytest.fixture(scope="session")
def llava(tiny_models):
    """The tiny LLaVA loaded once: (model, processor)."""
    import torch

    from mmpo.model import load_model, load_processor

    return load_model(tiny_models["llava"], dtype=torch.float32), load_processor(tiny_models["llava"])


# --- a scripted OpenAI-compatible judge on 127.0.0.1 (MMHal, Object HalBench, the README block) ---
class FakeJudge:
    """Answers POST /v1/chat/completions: first from ``script`` (``(status, payload,
    headers)`` in order), then ``reply(body)`` as a 200 completion. Records every request."""

    def __init__(self):
        self.script = []
        self.requests = []
        self.reply = lambda body: "Rating: 4"
        self.base_url = ""

    def respond(self, path, headers, body):
        self.requests.append({"path": path, "headers": headers, "body": body})
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}, {}
        if self.script:
            return self.script.pop(0)
        return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply(body)}}]}, {}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status, payload, headers = self.server.judge.respond(self.path, dict(self.headers), body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge():
    fake = FakeJudge()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.judge = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield fake
    server.shutdown()
    server.server_close()

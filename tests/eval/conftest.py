"""A scripted OpenAI-compatible judge on 127.0.0.1, shared by the judge-using eval tests."""

import http.server
import json
import threading

import pytest


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

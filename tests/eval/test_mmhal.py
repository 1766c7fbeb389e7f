"""MMHal-Bench: eval_gpt4.py's prompt and rating rules, the judge client (retries, errors,
cache) against a scripted OpenAI-compatible server on 127.0.0.1, and the adapter end to end.

The fixture ``fixtures/mmhal/response_template.json`` has the real file's keys and layout
(16 made-up records, so each of the 8 question types appears twice, in the benchmark's
order). Hand-worked scores used throughout, by index (type = index mod 8)::

    index  0 1 2 3 4 5 6 7 | 8 9 10 11 12 13 14 15
    score  6 0 3 2 5 1 4 0 | 4 2  3  6  1  0  5  3

    average = 45 / 16 = 2.8125; hallucinations (< 3) = 7 / 16 = 0.4375
    attribute (0, 8) 5.0; adversarial (1, 9) 1.0; comparison (2, 10) 3.0; counting (3, 11) 4.0;
    relation (4, 12) 3.0; environment (5, 13) 0.5; holistic (6, 14) 4.5; other (7, 15) 1.5
"""

import hashlib
import json
import os
import socket

import pytest

from mmpo.eval.benchmarks.mmhal import evaluate_mmhal, load_mmhal_responses, mmhal_questions
from mmpo.eval.judge import JudgeCache, JudgeClient, JudgeError, cache_path_for, request_key
from mmpo.eval.metrics.mmhal import (
    JUDGE_TEMPLATE,
    QUESTION_TYPES,
    build_judge_prompt,
    mmhal_scores,
    parse_rating,
    ratings_found,
)

TEMPLATE = os.path.join(os.path.dirname(__file__), "fixtures", "mmhal", "response_template.json")
SCORES = [6, 0, 3, 2, 5, 1, 4, 0, 4, 2, 3, 6, 1, 0, 5, 3]
PER_TYPE = {"attribute": 5.0, "adversarial": 1.0, "comparison": 3.0, "counting": 4.0,
            "relation": 3.0, "environment": 0.5, "holistic": 4.5, "other": 1.5}
# Judge replies giving SCORES; 7 and 13 are unreadable (→ 0), 12 is "10/10" (→ 1).
REPLIES = {i: f"The response is fine. Rating: {s}, as described." for i, s in enumerate(SCORES)}
REPLIES[1] = "It invents a truck. Rating: 0, not informative, with hallucination"
REPLIES[7] = "Rating:3 (no space after the colon)"
REPLIES[9] = "Rating: 2. I stand by rating: 2."
REPLIES[12] = "Rating: 10/10"
REPLIES[13] = "At first Rating: 2, but on reflection Rating: 5."
KEY_ENV = "MMPO_TEST_JUDGE_KEY"


@pytest.fixture
def sleeps():
    return []


def make_client(base_url, sleeps, **kw):
    return JudgeClient(base_url, "judge-model", api_key_env=KEY_ENV, jitter=0.0, sleep=sleeps.append, timeout=5, **kw)


def answer_of(body):
    """Which fixture record a judge request is about: its model answer is "answer <i>"."""
    content = body["messages"][0]["content"]
    return int(content.rsplit("### LMM Response to Evaluate\n", 1)[1].split()[1])


def write_responses(tmp_path, name="responses.json"):
    with open(TEMPLATE) as f:
        records = json.load(f)
    for i, record in enumerate(records):
        record["model_answer"] = f"answer {i}"
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return str(path)


# --- eval_gpt4.py's prompt and rating rules -----------------------------------------------

def test_template_is_eval_gpt4s_verbatim():
    # sha256 of eval_gpt4.py's ``template`` string (llava-rlhf/LLaVA-RLHF Eval/eval_gpt_mmhal.py,
    # identical to the benchmark's eval_gpt4.py), taken from the script's own text.
    assert hashlib.sha256(JUDGE_TEMPLATE.encode()).hexdigest() == "2c73d8c50f1740d000fae62cfeed103c2f7a5bcfa904b27e6e09900e7ce600cc"
    assert JUDGE_TEMPLATE.startswith("Please act as an impartial and objective judge")
    assert JUDGE_TEMPLATE.count("{}") == 4 and "cautious during evalutation." in JUDGE_TEMPLATE


def test_prompt_is_one_user_message_with_the_four_slots():
    record = {"image_content": ["Dog", "Mammal", "Grass"], "question": "What color is the collar?",
              "gt_answer": "Red.", "model_answer": "It is {red} {}."}
    messages = build_judge_prompt(record)
    assert [m["role"] for m in messages] == ["user"]
    content = messages[0]["content"]
    assert content.startswith(JUDGE_TEMPLATE.split("{}")[0])
    assert content.endswith(
        "- Rating: 0, not informative, with hallucination\n\n"
        "### Image Contents\nDog, Mammal, Grass\n\n"
        "### Question\nWhat color is the collar?\n\n"
        "### Standard Human-Generated Answer\nRed.\n\n"
        "### LMM Response to Evaluate\nIt is {red} {}.\n"
    )


@pytest.mark.parametrize("reply, score, found", [
    ("Short and correct. Rating: 4, somewhat informative, no hallucination", 4, [4]),
    ("RATING: 6", 6, [6]),
    ("Rating: 0, not informative, with hallucination", 0, [0]),
    ("Rating: 3 ... as said, rating: 3", 3, [3]),            # one distinct rating, twice
    ("Rating: 2 or maybe Rating: 5", 0, [2, 5]),             # two distinct → 0
    ("I cannot decide.", 0, []),                             # none → 0
    ("Rating:3", 0, []),                                     # no space → not found
    ("Rating:  5", 0, []),                                   # two spaces → not found
    ("Rating: 10/10", 1, [1]),                               # contains "rating: 1"
    ("Rating: 7", 0, []),                                    # outside 0..6
])
def test_parse_rating(reply, score, found):
    assert parse_rating(reply) == score
    assert ratings_found(reply) == found


def test_scores_hand_worked():
    figures = mmhal_scores(SCORES)
    assert figures["average_score"] == pytest.approx(45 / 16)
    assert figures["hallucination_rate"] == pytest.approx(7 / 16)
    assert list(figures["per_type"]) == list(QUESTION_TYPES)
    assert {t: f["average_score"] for t, f in figures["per_type"].items()} == pytest.approx(PER_TYPE)
    assert figures["per_type"]["adversarial"]["hallucination_rate"] == 1.0
    assert figures["per_type"]["counting"] == {"average_score": 4.0, "hallucination_rate": 0.5, "n": 2}


def test_scores_reject_bad_input():
    with pytest.raises(ValueError, match="no scores"):
        mmhal_scores([])
    with pytest.raises(ValueError, match="0..6"):
        mmhal_scores([3, 7])
    assert list(mmhal_scores([6, 2, 3])["per_type"]) == ["attribute", "adversarial", "comparison"]


# --- the judge client ---------------------------------------------------------------------

def test_request_layout_and_key(judge, sleeps, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test")
    client = make_client(judge.base_url + "/", sleeps)  # trailing slash is dropped
    messages = [{"role": "user", "content": "hello"}]
    assert client.complete(messages) == "Rating: 4"
    (request,) = judge.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["body"] == {"model": "judge-model", "messages": messages, "temperature": 0.0}
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    monkeypatch.delenv(KEY_ENV)
    client.complete(messages, max_tokens=64)
    assert "Authorization" not in judge.requests[1]["headers"]
    assert judge.requests[1]["body"]["max_tokens"] == 64


def test_429_honours_retry_after(judge, sleeps):
    judge.script = [(429, {"error": {"message": "slow down"}}, {"Retry-After": "3"}),
                    (429, {"error": {"message": "slow down"}}, {"Retry-After": "9999"})]
    client = make_client(judge.base_url, sleeps, max_wait=20)
    assert client.complete([{"role": "user", "content": "x"}]) == "Rating: 4"
    assert sleeps == [3.0, 20.0]  # the second Retry-After is capped at max_wait
    assert len(judge.requests) == 3


def test_5xx_backs_off_exponentially(judge, sleeps):
    judge.script = [(500, b"upstream crashed", {}), (503, b"", {})]
    client = make_client(judge.base_url, sleeps, backoff=1.5)
    assert client.complete([{"role": "user", "content": "x"}]) == "Rating: 4"
    assert sleeps == [1.5, 3.0]


def test_jitter_is_seedable(judge):
    waits = []
    for _ in range(2):
        client = JudgeClient(judge.base_url, "m", backoff=1.0, jitter=0.5, seed=7, sleep=lambda s: None)
        waits.append([client._wait(a, None) for a in range(3)])
    assert waits[0] == waits[1] and all(1.0 * 2**a <= w < 1.5 * 2**a for a, w in enumerate(waits[0]))


def test_retries_are_bounded(judge, sleeps):
    judge.script = [(502, b"bad gateway", {})] * 3
    client = make_client(judge.base_url, sleeps, max_retries=2)
    with pytest.raises(JudgeError, match=r"after 3 attempts; last: HTTP 502 bad gateway"):
        client.complete([{"role": "user", "content": "x"}])
    assert len(judge.requests) == 3 and len(sleeps) == 2


def test_401_fails_at_once_with_a_clear_error(judge, sleeps):
    judge.script = [(401, {"error": {"message": "Incorrect API key provided"}}, {})]
    client = make_client(judge.base_url, sleeps)
    with pytest.raises(JudgeError) as err:
        client.complete([{"role": "user", "content": "x"}])
    message = str(err.value)
    assert client.url in message and "HTTP 401" in message and "Incorrect API key provided" in message
    assert f"${KEY_ENV}" in message
    assert len(judge.requests) == 1 and sleeps == []


def test_unreachable_server_is_retried_then_reported(sleeps):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/v1", sleeps, max_retries=1)
    with pytest.raises(JudgeError, match="cannot reach"):
        client.complete([{"role": "user", "content": "x"}])
    assert sleeps == [2.0]


def test_malformed_reply_is_an_error(judge, sleeps):
    judge.script = [(200, {"object": "error", "message": "model not loaded"}, {}),
                    (200, {"choices": [{"message": {"role": "assistant", "content": None}}]}, {})]
    client = make_client(judge.base_url, sleeps)
    for _ in range(2):
        with pytest.raises(JudgeError, match="without a text choices"):
            client.complete([{"role": "user", "content": "x"}])


def test_cache_answers_repeated_requests(judge, sleeps, tmp_path):
    path = str(tmp_path / "R.judge.jsonl")
    assert cache_path_for(str(tmp_path / "R.json")) == path
    client = make_client(judge.base_url, sleeps)
    messages = [{"role": "user", "content": "x"}]
    assert client.complete(messages, cache=JudgeCache(path)) == "Rating: 4"
    judge.reply = lambda body: "something else"
    assert client.complete(messages, cache=JudgeCache(path)) == "Rating: 4"  # reopened: from the file
    assert len(judge.requests) == 1
    assert client.complete(messages, temperature=0.5, cache=JudgeCache(path)) == "something else"
    assert len(judge.requests) == 2  # a different parameter is a different request


def test_cache_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "c.jsonl"
    good = json.dumps({"key": "a", "model": "m", "reply": "Rating: 1"})
    path.write_text(good + "\n" + '{"key": "b", "model": "m", "re')
    cache = JudgeCache(str(path))
    assert len(cache) == 1 and cache.get("a") == "Rating: 1" and "b" not in cache
    cache.add("c", "Rating: 2", "m")
    assert path.read_text().splitlines() == [good, json.dumps({"key": "c", "model": "m", "reply": "Rating: 2"})]
    assert JudgeCache(str(path)).get("c") == "Rating: 2"


def test_request_key_covers_url_model_messages_and_params():
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0.0}
    key = request_key("http://h/v1/chat/completions", body)
    assert key == request_key("http://h/v1/chat/completions", dict(reversed(body.items())))
    assert key != request_key("http://other/v1/chat/completions", body)
    assert key != request_key("http://h/v1/chat/completions", {**body, "model": "n"})
    assert key != request_key("http://h/v1/chat/completions", {**body, "temperature": 0.2})


# --- the adapter --------------------------------------------------------------------------

def test_evaluate_end_to_end(judge, sleeps, tmp_path):
    responses = write_responses(tmp_path)
    judge.reply = lambda body: REPLIES[answer_of(body)]
    cache = str(tmp_path / "R.judge.jsonl")
    result = evaluate_mmhal(responses, make_client(judge.base_url, sleeps), cache)

    assert result.benchmark == "mmhal"
    assert result.metrics == {"average_score": pytest.approx(45 / 16), "hallucination_rate": pytest.approx(7 / 16),
                              "n": 16, "ambiguous_ratings": 2}
    assert list(result.groups) == list(QUESTION_TYPES)
    assert {t: g["average_score"] for t, g in result.groups.items()} == pytest.approx(PER_TYPE)
    assert [d["score"] for d in result.details] == SCORES
    assert [d["id"] for d in result.details if d["ambiguous"]] == [7, 13]
    first = result.details[0]
    assert list(first) == ["id", "question", "question_type", "image", "answer", "gt_answer", "judge_reply", "score", "ambiguous"]
    assert first["image"].endswith("/11111111111_aaaaaaaaaa_o.jpg") and first["answer"] == "answer 0"
    assert result.details[9]["question_type"] == "adversarial"
    assert any("2 of 16 judge replies" in n and "[7, 13]" in n for n in result.notes)
    assert any("not the benchmark's 96" in n for n in result.notes)
    assert result.inputs["judge_model"] == "judge-model" and result.inputs["judge_cache"] == cache

    body = judge.requests[0]["body"]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0 and "max_tokens" not in body
    assert body["messages"] == [{"role": "user", "content": JUDGE_TEMPLATE.format(
        "Dog, Mammal, Grass", "What color is the dog's collar?", "The dog's collar is red.", "answer 0")}]

    # A rerun with the same cache asks the judge nothing and gives the same result.
    again = evaluate_mmhal(responses, make_client(judge.base_url, sleeps), cache)
    assert len(judge.requests) == 16
    assert again.metrics == result.metrics and again.details == result.details


def test_resume_after_a_failure_midway(judge, sleeps, tmp_path):
    responses = write_responses(tmp_path)
    judge.reply = lambda body: REPLIES[answer_of(body)]
    cache = str(tmp_path / "R.judge.jsonl")
    # Five good replies, then a permanent error on the sixth request.
    judge.script = [(200, {"choices": [{"message": {"content": REPLIES[i]}}]}, {}) for i in range(5)]
    judge.script.append((403, {"error": {"message": "quota exceeded"}}, {}))
    with pytest.raises(JudgeError, match=r"record 5 of 16 .*the 5 records before it are judged and saved in .*rerun to resume"):
        evaluate_mmhal(responses, make_client(judge.base_url, sleeps), cache)
    assert len(judge.requests) == 6

    result = evaluate_mmhal(responses, make_client(judge.base_url, sleeps), cache)
    resumed = [answer_of(r["body"]) for r in judge.requests[6:]]
    assert resumed == list(range(5, 16))  # records 0-4 came from the cache
    assert [d["score"] for d in result.details] == SCORES


def test_records_out_of_order_are_flagged(judge, sleeps, tmp_path):
    records = json.loads(open(write_responses(tmp_path)).read())
    records[0], records[1] = records[1], records[0]
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(records))
    result = evaluate_mmhal(str(path), make_client(judge.base_url, sleeps))
    assert result.details[0]["question_type"] == "attribute"  # by position, as eval_gpt4.py
    assert any("Records [0, 1] have a question_type field" in n for n in result.notes)
    assert result.inputs["judge_cache"] is None


def test_load_responses_checks_the_file(tmp_path):
    def load(obj, name="r.json"):
        path = tmp_path / name
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return load_mmhal_responses(str(path))

    good = {"image_content": ["Cat"], "question": "q?", "gt_answer": "a", "model_answer": "b"}
    assert load([good])[0]["model_answer"] == "b"
    alias = {k: v for k, v in good.items() if k != "model_answer"} | {"answer": "c"}
    assert load([alias])[0]["model_answer"] == "c"
    with pytest.raises(ValueError, match=r"r\.json: expected a JSON list"):
        load({"records": []})
    with pytest.raises(ValueError, match=r"r\.json: record 1: missing key 'gt_answer'"):
        load([good, {k: v for k, v in good.items() if k != "gt_answer"}])
    with pytest.raises(ValueError, match=r"record 0: 'model_answer' must be a string, got NoneType"):
        load([good | {"model_answer": None}])
    with pytest.raises(ValueError, match=r"record 0: no 'model_answer' \(or 'answer'\)"):
        load([{k: v for k, v in good.items() if k != "model_answer"}])
    with pytest.raises(ValueError, match="'image_content' must be a list of strings"):
        load([good | {"image_content": "Cat"}])
    with pytest.raises(ValueError, match="response_template.json rather than"):
        load_mmhal_responses(TEMPLATE)
    with pytest.raises(ValueError, match=r"r\.jsonl: line 2: not JSON"):
        load(json.dumps(good) + "\n{oops\n", name="r.jsonl")


def test_questions_round_trip(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(FileNotFoundError, match="16 of 16 MMHal images not found"):
        mmhal_questions(TEMPLATE, str(images))
    for record in json.loads(open(TEMPLATE).read()):
        (images / record["image_src"].rsplit("/", 1)[-1]).write_bytes(b"")
    rows = mmhal_questions(TEMPLATE, str(images))
    assert len(rows) == 16 and rows[3]["id"] == 3
    assert rows[3]["image"] == str(images / "44444444444_dddddddddd_o.jpg")
    assert rows[3]["prompt"] == "How many birds are on the branch?" and "model_answer" not in rows[3]
    answered = tmp_path / "answers.jsonl"
    shuffled = rows[8:] + rows[:8]  # a generation harness may write rows out of order
    answered.write_text("".join(json.dumps(row | {"answer": f"answer {row['id']}"}) + "\n" for row in shuffled))
    records = load_mmhal_responses(str(answered))
    assert [r["model_answer"] for r in records] == [f"answer {i}" for i in range(16)]
    assert build_judge_prompt(records[3])[0]["content"].endswith("### LMM Response to Evaluate\nanswer 3\n")

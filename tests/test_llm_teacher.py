"""The LLM teacher client against a real chat-completions server on loopback (tests/chat_server.py:
the markers MALFORMED, FLAKY500, ALWAYS500, SLOW, WRONGKEYS, NOSCHEMA in a report drive its answers)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx")

from export.reports.teachers.llm import PROMPT_VERSION, LLMTeacher, parse_answer, AnswerError  # noqa: E402
from radedge.labels import BLANK, FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN  # noqa: E402
from tests.chat_server import ChatServer  # noqa: E402


def _teacher(server: ChatServer, tmp_path: Path, **kw) -> LLMTeacher:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 2.0)  # generous: exact request counts must not depend on machine load
    return LLMTeacher(server.url, "test-model", tmp_path / "cache.jsonl", **kw)


def test_valid_answers_with_soft_labels(server, tmp_path):
    with _teacher(server, tmp_path) as t:
        out = t.label(["small left effusion", "no pneumothorax", "possible pneumonia", "clear lungs"])
    eff, ptx, pna, clear = out
    assert eff.error is None and eff.classes[FINDINGS.index("Pleural Effusion")] == POSITIVE
    assert ptx.classes[FINDINGS.index("Pneumothorax")] == NEGATIVE
    assert pna.classes[FINDINGS.index("Pneumonia")] == UNCERTAIN
    assert clear.classes[FINDINGS.index("Edema")] == BLANK
    # No Finding follows the CheXpert rule: positive for the clear report, blank with an effusion.
    assert clear.classes[0] == POSITIVE and eff.classes[0] == BLANK
    i = FINDINGS.index("Pleural Effusion")
    np.testing.assert_allclose(eff.probs[i], [0, 0.8, 0, 0.2], atol=1e-3)
    assert np.allclose(eff.probs.sum(-1), 1, atol=1e-4)
    sent = server.requests[0]
    assert sent["temperature"] == 0 and sent["model"] == "test-model"
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["required"] == list(FINDINGS)


def test_malformed_answer_is_retried_then_recorded_not_guessed(server, tmp_path):
    with _teacher(server, tmp_path, attempts=3) as t:
        (bad,) = t.label(["MALFORMED effusion"])
    assert bad.classes is None and "invalid answer" in bad.error
    assert server.seen["Findings: " + ", ".join(FINDINGS) + "\n\nReport:\nMALFORMED effusion\n\n"
                       "JSON object with exactly these 14 keys:"] == 3


def test_wrong_keys_fail_validation(server, tmp_path):
    with _teacher(server, tmp_path, attempts=2) as t:
        (bad,) = t.label(["WRONGKEYS"])
    assert bad.classes is None and "keys differ" in bad.error


def test_http_500_is_retried_with_backoff(server, tmp_path):
    with _teacher(server, tmp_path) as t:
        flaky, dead = t.label(["FLAKY500 effusion", "ALWAYS500"])
    assert flaky.error is None and flaky.classes[FINDINGS.index("Pleural Effusion")] == POSITIVE
    assert dead.classes is None and "HTTP 500" in dead.error
    assert t.requests == 2 + 4  # flaky: 500 then ok; dead: all 4 attempts


def test_timeout_is_retried(server, tmp_path):
    with _teacher(server, tmp_path, timeout=1.0) as t:  # a loaded machine still answers in 1 s
        (slow,) = t.label(["SLOW effusion"])
    assert slow.error is None and slow.classes[FINDINGS.index("Pleural Effusion")] == POSITIVE
    assert t.requests == 2


def test_server_without_json_schema_falls_back(server, tmp_path):
    with _teacher(server, tmp_path) as t:
        (ok,) = t.label(["NOSCHEMA effusion"])
    assert ok.error is None and ok.probs is None  # asked again without response_format and logprobs
    assert "response_format" not in server.requests[-1] and "logprobs" not in server.requests[-1]


def test_cache_resumes_without_asking_again(server, tmp_path):
    texts = [f"report {i} effusion" for i in range(6)] + ["MALFORMED"]
    with _teacher(server, tmp_path, attempts=1) as t:
        first = t.label(texts[:3])
    assert len(server.requests) == 3
    with _teacher(server, tmp_path, attempts=1) as t:  # a new run over all of them
        again = t.label(texts)
    assert len(server.requests) == 3 + 4  # only the 4 new reports were asked
    assert [a.classes.tolist() for a in again[:3]] == [f.classes.tolist() for f in first]
    with _teacher(server, tmp_path, attempts=1) as t:  # invalid answers are cached too (temperature 0)
        t.label(texts)
    assert len(server.requests) == 7
    lines = (tmp_path / "cache.jsonl").read_text().splitlines()
    assert len(lines) == 7 and all("key" in json.loads(line) for line in lines)


def test_cache_key_depends_on_model_and_prompt_version(server, tmp_path):
    a = LLMTeacher(server.url, "model-a")
    b = LLMTeacher(server.url, "model-b")
    assert a.cache_key("x") != b.cache_key("x") and a.cache_key("x") != a.cache_key("y")
    assert a.provenance["prompt_version"] == PROMPT_VERSION


def test_concurrency_is_bounded(server, tmp_path):
    with _teacher(server, tmp_path, concurrency=2) as t:
        out = t.label([f"SLOW r{i}" for i in range(4)])
    # Each SLOW report times out once and then succeeds; with 2 workers all four still finish.
    assert all(o.error is None for o in out) and t.requests == 8


@pytest.mark.parametrize("content", ["[]", '{"No Finding": "maybe"}', "sure! {}", ""])
def test_parse_answer_is_strict(content):
    with pytest.raises(AnswerError):
        parse_answer(content)


def test_parse_answer_accepts_a_code_fence():
    labels = {name: "not mentioned" for name in FINDINGS}
    assert parse_answer("```json\n" + json.dumps(labels) + "\n```").tolist() == [0] * 14

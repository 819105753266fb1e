"""A real chat-completions server on loopback (http.server in a thread) for the LLM teacher tests.

The server reads the report from the user message and acts on markers in it: MALFORMED (bad JSON),
FLAKY500 (HTTP 500 on the first request for that report, then a valid answer), ALWAYS500, SLOW
(sleeps past the client's timeout on the first request), WRONGKEYS, NOSCHEMA (rejects response_format
with HTTP 400, like a server without JSON-schema support). Every request is counted. The `server`
fixture (conftest.py) starts one per test.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from radedge.labels import FINDINGS

MAX_REQUESTS = 200  # the server refuses more: a runaway retry loop fails the test instead of hanging


def _answer(report: str) -> dict[str, str]:
    labels = {name: "not mentioned" for name in FINDINGS}
    if "effusion" in report:
        labels["Pleural Effusion"] = "positive"
    if "pneumothorax" in report:
        labels["Pneumothorax"] = "negative"
    if "pneumonia" in report:
        labels["Pneumonia"] = "uncertain"
    return labels


def _logprobs(content: str) -> dict:
    """One token per character, except each value's first word, which gets alternatives."""
    tokens = []
    i = 0
    while i < len(content):
        for word, alt in (("positive", "uncertain"), ("uncertain", "positive"), ("negative", "not"),
                          ("not mentioned", "negative")):
            if content.startswith(word, i):
                head = word.split()[0]
                tokens.append({"token": head, "logprob": -0.2231,  # p = 0.8
                               "top_logprobs": [{"token": head, "logprob": -0.2231},
                                                {"token": alt[:3], "logprob": -1.6094}]})  # p = 0.2
                i += len(head)
                break
        else:
            tokens.append({"token": content[i], "logprob": 0.0, "top_logprobs": []})
            i += 1
    return {"content": tokens}


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path != "/v1/chat/completions":
            return self._send(404, '{"error": "not found"}')
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        report = payload["messages"][-1]["content"]
        with self.server.lock:
            self.server.requests.append(payload)
            n = self.server.seen[report] = self.server.seen.get(report, 0) + 1
            total = len(self.server.requests)
        if total > MAX_REQUESTS:
            return self._send(503, '{"error": "request budget spent"}')
        if "NOSCHEMA" in report and "response_format" in payload:
            return self._send(400, '{"error": "response_format is not supported"}')
        if "ALWAYS500" in report or ("FLAKY500" in report and n == 1):
            return self._send(500, '{"error": "internal"}')
        if "SLOW" in report and n == 1:
            time.sleep(4.0)  # far past the client timeout, so the retry is the only answer
        labels = _answer(report)
        if "WRONGKEYS" in report:
            labels["Hernia"] = "positive"
        content = json.dumps(labels)
        if "MALFORMED" in report:
            content = content[:-5]
        choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
        if payload.get("logprobs"):
            choice["logprobs"] = _logprobs(content)
        body = {"id": "x", "object": "chat.completion", "model": payload["model"], "choices": [choice]}
        self._send(200, json.dumps(body))

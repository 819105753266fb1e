"""The LLM teacher: any OpenAI-compatible chat-completions endpoint run on site (vLLM, llama.cpp server, Ollama).

One versioned prompt asks for a JSON object that fills the 14-finding template with "positive",
"negative", "uncertain" or "not mentioned". The answer is validated strictly (exactly the 14 keys, each
value one of the four words); one that never validates is recorded as an error, never guessed. When
the server returns token log-probabilities, the alternatives of the first token of each value become
soft labels. Answers are cached on disk, keyed by (endpoint model, prompt version, report hash), so a
stopped run resumes without asking again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import httpx
import numpy as np

from radedge.errors import TrainingError
from radedge.io.records import RecordWriter
from radedge.labels import BLANK, CLASSES, FINDINGS, N_CLASSES, NEGATIVE, POSITIVE, UNCERTAIN, apply_no_finding

from . import TeacherLabel

log = logging.getLogger(__name__)

# Bump whenever SYSTEM_PROMPT, USER_PROMPT, the schema or the parsing changes: it is part of the cache key.
PROMPT_VERSION = "chexpert14-v1"
VALUE_WORDS = {"not mentioned": BLANK, "positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}
assert [VALUE_WORDS[c] for c in CLASSES] == list(range(N_CLASSES))

SYSTEM_PROMPT = (
    "You are a radiologist labelling chest X-ray reports for a research data set. For each of the 14 "
    "findings, read only what the report says about the current image and answer with exactly one of: "
    '"positive" (the report states the finding is present), "negative" (the report states it is absent), '
    '"uncertain" (the report hedges: possible, may represent, cannot exclude, suggestive of), '
    '"not mentioned" (the report does not speak about it). "No Finding" is "positive" only when the report '
    'describes no abnormality other than support devices, else "not mentioned". '
    "Answer with one JSON object and nothing else."
)
USER_PROMPT = "Findings: {findings}\n\nReport:\n{report}\n\nJSON object with exactly these 14 keys:"


def response_schema() -> dict[str, Any]:
    """JSON schema of a valid answer (sent as `response_format` when the server takes it)."""
    values = list(VALUE_WORDS)
    props = {name: {"type": "string", "enum": values} for name in FINDINGS}
    props[FINDINGS[0]] = {"type": "string", "enum": ["positive", "not mentioned"]}
    return {"type": "object", "properties": props, "required": list(FINDINGS), "additionalProperties": False}


def report_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AnswerError(TrainingError, ValueError):
    """The model answered, but not with a valid labelled template."""


_FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_answer(content: str) -> np.ndarray:
    """Classes `int8[14]` from the model's text; AnswerError unless it is exactly the template.

    A Markdown code fence around the object is tolerated (servers without a JSON mode add one);
    nothing else is: missing or extra keys, other values, or any text besides the object fail.
    """
    fenced = _FENCE_RE.match(content)
    body = fenced.group(1) if fenced else content
    try:
        obj = json.loads(body)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"not JSON: {exc.msg} at {exc.pos}") from exc
    if not isinstance(obj, dict):
        raise AnswerError(f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in FINDINGS if k not in obj]
    extra = [k for k in obj if k not in FINDINGS]
    if missing or extra:
        raise AnswerError(f"keys differ from the template (missing {missing}, extra {extra})")
    classes = np.zeros(len(FINDINGS), dtype=np.int8)
    for i, name in enumerate(FINDINGS):
        value = obj[name]
        if not isinstance(value, str) or value.strip().lower() not in VALUE_WORDS:
            raise AnswerError(f"{name}: {value!r} is not one of {list(VALUE_WORDS)}")
        classes[i] = VALUE_WORDS[value.strip().lower()]
    if classes[0] not in (BLANK, POSITIVE):
        raise AnswerError(f"No Finding must be 'positive' or 'not mentioned', got {CLASSES[classes[0]]!r}")
    return classes


def _token_class(token: str) -> int | None:
    """Class whose word starts with this token's text (the first token of a value), or None."""
    t = token.strip().lstrip('"').strip().lower()
    if not t:
        return None
    hits = [cls for word, cls in VALUE_WORDS.items() if word.startswith(t)]
    return hits[0] if len(hits) == 1 else None


def soft_labels(content: str, logprobs: Any, classes: np.ndarray) -> np.ndarray | None:
    """Class probabilities `[14, 4]` from OpenAI-style `choices[0].logprobs`, or None when absent.

    For each finding, the token that starts its value in the answer is located by character offset;
    the exponentiated log-probabilities of its top alternatives that spell one of the four words are
    renormalised. Findings whose token cannot be located keep a one-hot row of the parsed class.
    """
    entries = (logprobs or {}).get("content") if isinstance(logprobs, dict) else None
    if not entries:
        return None
    starts, pos = [], 0
    for e in entries:
        starts.append(pos)
        pos += len(e.get("token", ""))
    probs = np.eye(N_CLASSES, dtype=np.float32)[classes.astype(np.int64)]
    text = "".join(e.get("token", "") for e in entries)
    if text != content:  # offsets would be meaningless
        return probs
    for i, name in enumerate(FINDINGS):
        m = re.search(r'"%s"\s*:\s*"' % re.escape(name), content)
        if not m:
            continue
        at = m.end() - 1  # the value's opening quote: tokens often include it
        k = max(j for j, s in enumerate(starts) if s <= at)
        if _token_class(entries[k]["token"]) is None and k + 1 < len(entries):
            k += 1  # the quote was its own token
        alts = entries[k].get("top_logprobs") or [{"token": entries[k]["token"], "logprob": entries[k]["logprob"]}]
        mass = np.zeros(N_CLASSES, dtype=np.float64)
        for alt in alts:
            cls = _token_class(alt.get("token", ""))
            if cls is not None:
                mass[cls] += math.exp(float(alt.get("logprob", -math.inf)))
        if mass.sum() > 0 and mass.argmax() == classes[i]:
            probs[i] = (mass / mass.sum()).astype(np.float32)
    return probs


class LLMTeacher:
    """Labels reports through a chat-completions endpoint, with cache, retries and bounded concurrency.

    `endpoint` is the server's base URL (`http://host:8000/v1`) or the full `/chat/completions` URL.
    """

    name = "llm"

    def __init__(self, endpoint: str, model: str, cache_path: str | Path | None = None, *, timeout: float = 120.0,
                 attempts: int = 4, backoff: float = 1.0, concurrency: int = 4, logprobs: bool = True,
                 json_schema: bool = True, max_tokens: int = 400, api_key: str | None = None) -> None:
        url = endpoint.rstrip("/")
        self.url = url if url.endswith("/chat/completions") else url + "/chat/completions"
        self.model = model
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.use_logprobs = logprobs
        self.use_schema = json_schema
        self.max_tokens = max_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout), headers=headers)
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, Any]] = {}
        self._writer: RecordWriter | None = None
        if cache_path is not None:
            self._writer = RecordWriter(cache_path, resume=True)
            self._cache = {r["key"]: r for r in self._writer.existing if "key" in r}
        self.requests = 0  # HTTP requests sent (tests and logs)

    @property
    def provenance(self) -> dict[str, Any]:
        return {"teacher": "llm", "endpoint": self.url, "model": self.model, "prompt_version": PROMPT_VERSION}

    def cache_key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model}\n{PROMPT_VERSION}\n{report_hash(text)}".encode()).hexdigest()

    # ---- one request ------------------------------------------------------------------------
    def _payload(self, text: str) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "temperature": 0,
            "max_tokens": self.max_tokens,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": USER_PROMPT.format(findings=", ".join(FINDINGS), report=text)},
            ],
        }
        if self.use_schema:
            payload["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "chexpert_labels", "strict": True, "schema": response_schema()}}
        if self.use_logprobs:
            payload["logprobs"] = True
            payload["top_logprobs"] = 5
        return payload

    def _ask(self, text: str) -> dict[str, Any]:
        """Cache record for one report: {"key", "classes", "probs"?} or {"key", "error", "content"?}.

        Transport failures (timeouts, connection errors, HTTP 429 / 5xx) and invalid answers are
        retried with exponential back-off; a server that rejects `response_format` or `logprobs`
        (HTTP 400 / 422) is asked again without them, and the choice sticks for the run.
        """
        key = self.cache_key(text)
        error, content = "no attempt made", None
        attempt = 0
        while attempt < self.attempts:
            payload = self._payload(text)
            with self._lock:
                self.requests += 1
            try:
                resp = self._client.post(self.url, json=payload)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
                attempt += 1
                self._sleep(attempt)
                continue
            if resp.status_code in (400, 422) and (self.use_schema or self.use_logprobs):
                log.warning("server rejected response_format/logprobs (HTTP %s); asking without them",
                            resp.status_code)
                with self._lock:
                    self.use_schema = self.use_logprobs = False
                continue  # not counted: the request, not the report, was at fault
            if resp.status_code != 200:
                error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                if resp.status_code == 429 or resp.status_code >= 500:
                    attempt += 1
                    self._sleep(attempt)
                    continue
                break
            try:
                choice = resp.json()["choices"][0]
                content = choice["message"]["content"]
                if not isinstance(content, str):
                    raise AnswerError("message content is not text")
                classes = parse_answer(content)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"invalid answer: {exc}"
                attempt += 1
                self._sleep(attempt)
                continue
            record: dict[str, Any] = {"key": key, "classes": classes.tolist()}
            probs = soft_labels(content, choice.get("logprobs"), classes)
            if probs is not None:
                record["probs"] = np.round(probs, 5).tolist()
            return record
        failed: dict[str, Any] = {"key": key, "error": error}
        if content is not None:
            failed["content"] = content[:2000]
        return failed

    def _sleep(self, attempt: int) -> None:
        if attempt < self.attempts and self.backoff > 0:
            time.sleep(self.backoff * 2 ** (attempt - 1))

    # ---- many reports -----------------------------------------------------------------------
    def _lookup(self, text: str) -> dict[str, Any]:
        key = self.cache_key(text)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        record = self._ask(text)
        # Only answers are cached (valid or not): a transport failure is asked again on resume.
        if "classes" in record or "content" in record:
            with self._lock:
                self._cache[key] = record
                if self._writer is not None:
                    self._writer.write(record)
        return record

    def label(self, texts: Sequence[str]) -> list[TeacherLabel]:
        """One TeacherLabel per text, in order; at most `concurrency` requests in flight."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            records = list(pool.map(self._lookup, texts))
        return [_to_label(r) for r in records]

    def close(self) -> None:
        self._client.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> "LLMTeacher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _to_label(record: dict[str, Any]) -> TeacherLabel:
    if "classes" not in record:
        return TeacherLabel(None, None, record.get("error", "no answer"))
    classes = apply_no_finding(np.asarray(record["classes"], dtype=np.int8))
    probs = None
    if "probs" in record:
        probs = np.asarray(record["probs"], dtype=np.float32)
        probs[0] = np.eye(N_CLASSES, dtype=np.float32)[classes[0]]  # No Finding follows the rule, not the LLM
    return TeacherLabel(classes, probs)

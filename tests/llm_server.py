"""An OpenAI-compatible chat server on loopback for tests, with faults on demand.

By default it answers every chat call with valid JSON: the n paraphrases the request's schema
asks for, made from the text after 'Question:' or 'Misconception:'. `script` maps a substring
of the prompt to the behaviours of the next calls whose prompt contains it, one per call:
'ok', '429' (with Retry-After), '500', 'hang' (longer than the client's timeout), 'drop'
(truncated HTTP body), 'malformed' (not JSON), 'short' (one paraphrase), 'messy' (empty,
duplicate and copied texts among n+2), 'reject' (the synthesis judge says no), or any other
string, returned as the content. Synthesis calls (schemas with 'question' or 'accept') get a
question for the prompt's misconception and an accepting verdict.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    def __init__(self, delay: float = 0.0, hang_seconds: float = 3.0):
        self.delay = delay
        self.hang_seconds = hang_seconds
        self.script: dict[str, list[str]] = {}
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    def __enter__(self) -> FakeLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def behaviour(self, prompt: str) -> str:
        with self.lock:
            for marker, queue in self.script.items():
                if marker in prompt and queue:
                    return queue.pop(0)
        return "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = "\n".join(m["content"] for m in body["messages"])
                original = subject_of(prompt)
                with fake.lock:
                    fake.requests[original] += 1
                time.sleep(fake.delay)
                action = fake.behaviour(prompt)
                if action == "429":
                    return self._send(
                        429, {"error": {"message": "slow down"}}, {"Retry-After": "0.05"}
                    )
                if action == "500":
                    return self._send(500, {"error": {"message": "boom"}})
                if action == "hang":
                    time.sleep(fake.hang_seconds)
                if action in ("ok", "hang", "reject") and is_synthesis(body):
                    return self._send(
                        200, completion(body, prompt, synthesis_answer(body, prompt, action))
                    )
                n = wanted_count(body, prompt)
                texts = [f"{original} (version {i})" for i in range(1, n + 1)]
                content = {
                    "ok": json.dumps({"paraphrases": texts}),
                    "hang": json.dumps({"paraphrases": texts}),
                    "malformed": '{"paraphrases": ["unterminated',
                    "short": json.dumps({"paraphrases": texts[:1]}),
                    "messy": json.dumps(
                        {"paraphrases": ["", original, texts[0], texts[0], *texts[1:], "extra"]}
                    ),
                }.get(action, action)
                reply = completion(body, prompt, content)
                if action == "drop":
                    data = json.dumps(reply).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.close()
                    return None
                return self._send(200, reply)

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def subject_of(prompt: str) -> str:
    match = re.search(r"^(?:Question|Misconception): (.*)$", prompt, re.MULTILINE)
    return match.group(1) if match else prompt[:40]


def wanted_count(body: dict, prompt: str) -> int:
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    items = schema.get("properties", {}).get("paraphrases", {}).get("minItems")
    if items:
        return int(items)
    match = re.search(r"(\d+) times", prompt)
    return int(match.group(1)) if match else 4


def completion(body: dict, prompt: str, content: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": len(prompt) // 4,
            "completion_tokens": len(content) // 4,
            "total_tokens": len(prompt) // 4 + len(content) // 4,
        },
    }


def _schema_fields(body: dict) -> set[str]:
    schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
    return set(schema.get("properties", {}))


def is_synthesis(body: dict) -> bool:
    return bool(_schema_fields(body) & {"question", "accept"})


def synthesis_answer(body: dict, prompt: str, action: str) -> str:
    """A new question for the misconception named last in the prompt, or the judge's verdict
    (accept, unless the behaviour is 'reject')."""
    if "accept" in _schema_fields(body):
        return json.dumps({"accept": action != "reject", "reason": "checked"})
    misconception = re.findall(r"^Misconception: (.*)$", prompt, re.MULTILINE)[-1]
    return json.dumps(
        {
            "subject": "Number",
            "construct": "Written for the test",
            "question": f"A question testing: {misconception}",
            "correct_answer": "12",
            "wrong_answer": "21",
        }
    )

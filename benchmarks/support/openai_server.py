"""A real OpenAI-compatible HTTP server for tests and benchmarks, on a loopback port in a background thread.

Tests drive the real ``openai`` SDK over real sockets against it, so streaming (SSE), tool-call
deltas, HTTP errors, Retry-After and timeouts are exercised end to end. Replies come from a queue
of behaviours the test enqueues; every request is recorded (body, headers, arrival and finish
times) and the server counts requests in flight (``peak_active``) for rate-limit assertions.

It injects every fault a model endpoint shows in practice: HTTP errors with or without
``Retry-After`` / ``retry-after-ms`` (:class:`ErrorReply`), OpenAI's context-length 400
(:func:`context_length_error`), slow answers (``delay_s`` past the client's timeout, or a stream
trickling out with ``chunk_delay_s``), a dropped connection (:class:`Disconnect`), a stream cut
halfway (:class:`CutStream`: socket closed mid-SSE, or the body ended early), an invalid JSON
``data:`` line (:class:`MalformedChunk`), an error event in the middle of a stream
(:class:`StreamError`), and tool calls whose arguments are not JSON (a :class:`ToolCallSpec` with a
string). Connection refused is a port nothing listens on (:func:`free_port`). The behaviours and the
JSON they are written as are in :mod:`benchmarks.support.openai_replies`.

While it waits (``delay_s``, ``chunk_delay_s``) it watches the connection: a client that goes away
(a cancelled call closing its stream) ends the answer there, and the request records when
(:attr:`RecordedRequest.client_closed_at`), so tests can check that cancelling reached the socket.

    with OpenAICompatServer() as srv:
        srv.enqueue_text("hello there")
        ... OpenAIChatClient(ModelProfile(model="m", base_url=srv.base_url)) ...
        assert srv.requests[0].body["stream"] is True
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks.support.openai_replies import (
    Behaviour,
    CutStream,
    Disconnect,
    ErrorReply,
    MalformedChunk,
    RecordedRequest,
    StreamError,
    TextReply,
    ToolCallSpec,
    ToolCallsReply,
    chunk_envelope,
    completion_body,
    context_length_error,
    sse_chunks,
    usage_of,
)


# --- server -----------------------------------------------------------------------------------
class OpenAICompatServer:
    """Serves ``POST /v1/chat/completions`` (streaming and not), ``POST /v1/embeddings`` and ``GET /v1/models``.

    With the queue empty it answers 500 with a message saying so (``default`` replaces that).
    Embeddings need no queue: each input gets :func:`hashed_embedding` (``embedding_dim`` wide); a
    model outside ``embedding_models`` (when given) gets OpenAI's 404 ``model_not_found``.
    """

    def __init__(self, *, default: Behaviour | None = None, model_ids: tuple[str, ...] = ("test-model",),
                 watch_s: float = 0.02, embedding_dim: int = 32,
                 embedding_models: tuple[str, ...] | None = None) -> None:
        self.default = default
        self.model_ids = model_ids
        self.embedding_dim = embedding_dim
        self.embedding_models = embedding_models
        self.watch_s = watch_s
        """How often a waiting answer checks whether its client went away (the resolution of
        :attr:`RecordedRequest.client_closed_at`)."""
        self.requests: list[RecordedRequest] = []
        self.active = 0
        """Chat requests being answered right now."""
        self.peak_active = 0
        """The most chat requests answered at once."""
        self._queue: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> OpenAICompatServer:
        owner = self

        class Handler(_Handler):
            server_owner = owner

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # programming
    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._lock:
            self._queue.extend(behaviours)

    def enqueue_text(self, text: str, **kw: Any) -> None:
        self.enqueue(TextReply(text, **kw))

    def enqueue_tool_calls(self, *calls: ToolCallSpec | tuple[str, Any], **kw: Any) -> None:
        specs = [c if isinstance(c, ToolCallSpec) else ToolCallSpec(c[0], c[1]) for c in calls]
        self.enqueue(ToolCallsReply(specs, **kw))

    def enqueue_error(self, status: int, message: str = "simulated error", *, retry_after: float | str | None = None,
                      **kw: Any) -> None:
        self.enqueue(ErrorReply(status, message, retry_after, **kw))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next(self) -> Behaviour | None:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default


def hashed_embedding(text: str, dim: int) -> list[float]:
    """A deterministic bag-of-words vector (not normalised): each lower-cased word adds 1 to a bucket
    picked by its hash, so texts sharing words are close and the same text always gets the same vector."""
    vec = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.blake2b(word.strip(".,;:!?\"'()").encode(), digest_size=8).digest()
        vec[int.from_bytes(digest, "little") % dim] += 1.0
    return vec


def free_port() -> int:
    """A loopback port nothing listens on (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the handler ------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server_owner: OpenAICompatServer
    protocol_version = "HTTP/1.1"
    _request: RecordedRequest
    """The chat request being answered on this connection."""

    def setup(self) -> None:
        super().setup()
        with self.server_owner._lock:
            self.server_owner._sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        with self.server_owner._lock:
            self.server_owner._sockets.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return None

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, OSError):
            self.close_connection = True

    # routes
    def do_GET(self) -> None:
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in self.server_owner.model_ids]
            self._send_json(200, {"object": "list", "data": data})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        rec = self._record(body)
        self._request = rec
        if self.path.rstrip("/").endswith("/embeddings"):
            self._embeddings(body if isinstance(body, dict) else {})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        owner = self.server_owner
        with owner._lock:
            owner.active += 1
            owner.peak_active = max(owner.peak_active, owner.active)
        try:
            self._answer(body)
        except (ConnectionError, OSError):
            if rec.client_closed_at is None:
                rec.client_closed_at = time.monotonic()  # a write failed: the client is gone
            raise
        finally:
            with owner._lock:
                owner.active -= 1
                rec.finished_at = time.monotonic()

    def _embeddings(self, body: dict[str, Any]) -> None:
        owner = self.server_owner
        model = body.get("model", "")
        if owner.embedding_models is not None and model not in owner.embedding_models:
            err = {"message": f"The model `{model}` does not exist", "type": "invalid_request_error",
                   "param": None, "code": "model_not_found"}
            self._send_json(404, {"error": err})
            return
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t, owner.embedding_dim)}
                for i, t in enumerate(texts)]
        tokens = sum(len(t.split()) for t in texts)
        self._send_json(200, {"object": "list", "data": data, "model": model,
                              "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _answer(self, body: Any) -> None:
        behaviour = self.server_owner._next()
        if behaviour is None:
            self._send_json(500, {"error": {"message": "test server: no behaviour enqueued", "type": "server_error"}})
            return
        if behaviour.delay_s and self._pause(behaviour.delay_s):
            return
        request = body if isinstance(body, dict) else {}
        if isinstance(behaviour, Disconnect):
            self._drop()
        elif isinstance(behaviour, ErrorReply):
            headers = {} if behaviour.retry_after is None else {"Retry-After": str(behaviour.retry_after)}
            if behaviour.retry_after_ms is not None:
                headers["retry-after-ms"] = str(behaviour.retry_after_ms)
            code = behaviour.code if behaviour.code is not None else str(behaviour.status)
            err = {"message": behaviour.message, "type": behaviour.error_type, "param": None, "code": code}
            self._send_json(behaviour.status, {"error": err}, headers)
        elif isinstance(behaviour, CutStream | MalformedChunk | StreamError):
            self._faulty_stream(behaviour, request)
        elif request.get("stream"):
            self._stream(behaviour, request)
        else:
            self._send_json(200, completion_body(behaviour, request))

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True (stop answering) if the server stops or the client goes away first."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.server_owner._stop.wait(min(left, self.server_owner.watch_s)):
                return True
            if self._client_gone():
                self._request.client_closed_at = time.monotonic()
                self.close_connection = True
                return True
        return False

    def _client_gone(self) -> bool:
        """Whether the client closed its end: the request body was read whole, so anything readable
        now is end of file (or a reset), never more of the request."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # writing
    def _record(self, body: Any) -> RecordedRequest:
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = RecordedRequest(self.command, self.path, headers, body)
        with self.server_owner._lock:
            self.server_owner.requests.append(rec)
        return rec

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _stream_headers(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _faulty_stream(self, fault: CutStream | MalformedChunk | StreamError, request: dict[str, Any]) -> None:
        self._stream_headers()
        model = fault.reply.model or request.get("model") or "test-model"
        parts = sse_chunks(fault.reply, model)
        for chunk in parts[: fault.after_chunks]:
            self._write_event(json.dumps(chunk))
        if isinstance(fault, CutStream):
            if fault.graceful:
                self.wfile.write(b"0\r\n\r\n")  # a complete HTTP body that is half an answer
                self.wfile.flush()
            else:
                self._drop()  # mid-body: the chunked transfer never ends
            return
        if isinstance(fault, StreamError):
            err = {"message": fault.message, "type": fault.error_type, "code": fault.code}
            self._write_event(json.dumps({"error": err}))
        else:
            self._write_event(fault.data)
            for chunk in parts[fault.after_chunks :]:
                self._write_event(json.dumps(chunk))
            self._write_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _stream(self, behaviour: TextReply | ToolCallsReply, request: dict[str, Any]) -> None:
        self._stream_headers()
        model = behaviour.model or request.get("model") or "test-model"
        delay = behaviour.chunk_delay_s if isinstance(behaviour, TextReply) else 0.0
        for i, chunk in enumerate(sse_chunks(behaviour, model)):
            if i and delay and self._pause(delay):
                return
            self._write_event(json.dumps(chunk))
        if (request.get("stream_options") or {}).get("include_usage"):
            self._write_event(json.dumps(chunk_envelope(model, [], usage=usage_of(behaviour))))
        self._write_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_event(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()


__all__ = [
    "Behaviour",
    "CutStream",
    "Disconnect",
    "ErrorReply",
    "MalformedChunk",
    "OpenAICompatServer",
    "RecordedRequest",
    "StreamError",
    "TextReply",
    "ToolCallSpec",
    "ToolCallsReply",
    "context_length_error",
    "free_port",
]

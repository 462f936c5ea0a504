"""``troupe mcp serve --http``'s resumable SSE streams over real HTTP, as a 2025-11-25 client sees them: a call's
stream opens with a priming event (an id, empty data, a ``retry`` field), and a GET with ``Last-Event-ID`` replays
what followed it — the call's result — after the client lost the stream."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conformance.test_server_conformance import start_server, stop_server

pytestmark = pytest.mark.conformance

VERSION = "2025-11-25"


def frames(body: str) -> list[dict[str, str]]:
    """The SSE frames of ``body`` as dicts of their fields (``data`` lines joined)."""
    out = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            fields[name] = fields[name] + "\n" + value if name == "data" and name in fields else value
        if fields:
            out.append(fields)
    return out


def test_priming_event_retry_and_replay_after_last_event_id(tmp_path: Path) -> None:
    proc, url, _log = start_server(tmp_path, "--local")
    try:
        base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        with httpx.Client(timeout=30) as http:
            init = http.post(url, headers=base, json={
                "jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": VERSION, "capabilities": {},
                           "clientInfo": {"name": "sse-resume-test", "version": "1"}}})
            assert init.status_code == 200, init.text
            sid = init.headers["mcp-session-id"]
            headers = {**base, "mcp-session-id": sid, "mcp-protocol-version": VERSION}
            http.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"})

            call = http.post(url, headers=headers, json={
                "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "test_simple_text", "arguments": {}}})
            assert call.headers["content-type"].startswith("text/event-stream"), call.headers
            got = frames(call.text)
            priming = got[0]
            assert priming.get("id") and priming.get("data", "") == "" and int(priming["retry"]) > 0, got
            result = [f for f in got if '"id":2' in f.get("data", "").replace(" ", "")]
            assert result and json.loads(result[0]["data"])["result"]["content"][0]["type"] == "text"

            # The client lost the stream after the priming event: it reconnects with Last-Event-ID and gets the rest.
            # (the replay stream stays open for what the server sends later: read until the replayed frame)
            body = ""
            with http.stream("GET", url, headers={"Accept": "text/event-stream", "mcp-session-id": sid,
                                                  "mcp-protocol-version": VERSION, "Last-Event-ID": priming["id"]},
                             timeout=httpx.Timeout(10, read=10)) as replay:
                assert replay.status_code == 200
                for chunk in replay.iter_text():
                    body += chunk
                    if any(f.get("data") for f in frames(body)):
                        break
            again = [f for f in frames(body) if f.get("data")]
            assert again and json.loads(again[0]["data"]) == json.loads(result[0]["data"])
            assert all(f.get("id") != priming["id"] for f in again)  # nothing before the cursor comes back
    finally:
        stop_server(proc)

"""The application server under load: many SSE clients watching many live sessions.

``--sessions`` conversation sessions of a scripted one-agent team (a calculator call and a reply
per turn) are created over HTTP (``session_create_per_s``: concurrent POSTs, 16 at a time), then
``--clients`` SSE clients follow them (clients / sessions each), the way the console reads the
stream; then ``--turns`` rounds send every session a turn, ``--interval`` apart, and each client
times every lasting event from its ``ts`` (when the runtime wrote it to the event log) to the moment
its frame was read (``delay_ms`` p50/p99; only events written after every client was connected).
``rss_per_stream_kb``: the server's resident memory with every stream open, less before them, per
stream. The Troupe server runs in its own process (uvicorn, sessions in process: ``local``), so the
figure is the API's own cost. Each frame's id is the stream position the event log recorded with
the event (see docs/server.md); ``ids_differing_from_lake`` checks it against the finished session
read back from the lake (0 by construction: a check, not a measurement).

Baseline, in the same run: a bare Ray Serve endpoint (``benchmarks/support/bare_serve.py``: the same
three routes, no runtime) streaming the same events (a turn recorded from the Troupe run, stamped
afresh) to the same clients; its memory is its replica's and HTTP proxy's. ``--smoke`` (and
``--no-serve``) leave the baseline out: starting Ray costs more than the smoke run.

    python -m benchmarks.serve [--sessions 50] [--clients 200] [--turns 5] [--no-serve] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: the repository first on sys.path, as ``python -m`` has it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.support.cli import REPO, parse_args

TS = re.compile(r'"ts":\s*"([^"]+)"')
CREATE_CONCURRENCY = 16


def team_yaml(turns: int) -> str:
    steps = []
    for i in range(turns + 1):
        steps.append(f'        - tool_calls: [{{name: calculator, arguments: {{expression: "{i} * 7"}}}}]')
        steps.append(f'        - text: "{i} * 7 = {i * 7}"')
    return "\n".join([
        "name: bench", "entry: solo", "default_model: scripted",
        "agents:", "  - id: solo", "    role: computes", "    tools: [calculator]",
        "models:", "  scripted:", "    provider: scripted", "    scripts:", "      solo:", *steps, ""])


def troupe_app() -> Any:
    """``uvicorn --factory benchmarks.serve:troupe_app``: the server from ``$TROUPE_SERVE_CONFIG``."""
    from troupe.runtime.server.app import build_app
    from troupe.runtime.server.settings import ServerSettings

    return build_app(ServerSettings.from_env())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 2)


class Load:
    """The clients' side of one run against one server."""

    def __init__(self, url: str, *, sessions: int, clients: int, turns: int, interval: float,
                 check_ids: bool = False) -> None:
        self.url = url
        self.check_ids = check_ids
        self.sessions, self.clients, self.turns, self.interval = sessions, clients, turns, interval
        self.delays: list[float] = []
        self.frames = 0
        self.measure_from = float("inf")
        self.recorded: list[dict[str, Any]] = []  # what the first client saw (the baseline's template)
        self.connected = 0
        self.seen: dict[str, list[tuple[int, str]]] = {}  # session -> (id, event_id) its first client read

    async def create(self, http: Any) -> tuple[list[str], float]:
        gate = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def one(i: int) -> str:
            async with gate:
                r = await http.post(f"{self.url}/api/v1/sessions",
                                    json={"team": "bench", "input": "start", "conversation": True})
                r.raise_for_status()
                return str(r.json()["id"])

        started = time.perf_counter()
        ids = await asyncio.gather(*(one(i) for i in range(self.sessions)))
        return list(ids), time.perf_counter() - started

    async def watch(self, http: Any, sid: str, record: bool, ids: list[tuple[int, str]] | None) -> None:
        async with http.stream("GET", f"{self.url}/api/v1/sessions/{sid}/events",
                               headers={"Accept": "text/event-stream"}) as r:
            r.raise_for_status()
            self.connected += 1
            kind, has_id, position = "", False, 0
            async for line in r.aiter_lines():
                if not line:
                    kind, has_id = "", False
                elif line.startswith("id:"):
                    has_id, position = True, int(line[3:])
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    if kind == "end":
                        return
                    now = time.time()
                    self.frames += 1
                    m = TS.search(line)
                    if has_id and m:
                        ts = datetime.fromisoformat(m.group(1)).timestamp()
                        if ts >= self.measure_from:
                            self.delays.append((now - ts) * 1000)
                    if record:
                        self.recorded.append(json.loads(line[5:]))
                    if ids is not None and has_id:
                        ids.append((position, json.loads(line[5:])["event_id"]))

    async def ids_differing(self, http: Any) -> int:
        """Frames whose id is not the event's position in the finished session read back from the lake
        (``GET .../timeline``, in position order): a reconnect to another replica would skip or repeat
        there. 0 by construction (the id is the recorded position); kept as a check."""
        differ = 0
        for sid, seen in self.seen.items():
            r = await http.get(f"{self.url}/api/v1/sessions/{sid}/timeline")
            r.raise_for_status()
            lake = [e["event_id"] for e in r.json()]
            differ += sum(1 for pos, event_id in seen if pos > len(lake) or lake[pos - 1] != event_id)
        return differ

    async def run(self, rss: Any) -> dict[str, Any]:
        import httpx

        limits = httpx.Limits(max_connections=self.clients + 64, max_keepalive_connections=self.clients + 64)
        timeout = httpx.Timeout(120, connect=30)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            ids, took = await self.create(http)
            await asyncio.sleep(1.0)
            before = rss()
            watchers = []
            for i in range(self.clients):
                sid = ids[i % len(ids)]
                seen = self.seen.setdefault(sid, []) if self.check_ids and i < len(ids) else None
                watchers.append(asyncio.create_task(self.watch(http, sid, i == 0, seen)))
            deadline = time.monotonic() + 60
            while self.connected < self.clients and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # every stream open and caught up
            after = rss()
            self.measure_from = time.time()
            for _ in range(self.turns):
                await asyncio.gather(*(http.post(f"{self.url}/api/v1/sessions/{sid}/turns", json={"input": "next"})
                                       for sid in ids))
                await asyncio.sleep(self.interval)
            await asyncio.gather(*(http.post(f"{self.url}/api/v1/sessions/{sid}/cancel", json={}) for sid in ids))
            done, pending = await asyncio.wait(watchers, timeout=60)
            for task in pending:
                task.cancel()
            failed = [t.exception() for t in done if t.exception() is not None]
            differ = await self.ids_differing(http) if self.check_ids else None
        return {
            "session_create_per_s": round(self.sessions / took, 1),
            "delay_ms_p50": pct(self.delays, 0.50), "delay_ms_p99": pct(self.delays, 0.99),
            "events_timed": len(self.delays), "frames": self.frames,
            "rss_per_stream_kb": round((after - before) / max(1, self.connected) / 1024, 1),
            "streams": self.connected, "streams_unfinished": len(pending), "stream_errors": len(failed),
            "first_errors": sorted({repr(e)[:200] for e in failed})[:3],
            **({"ids_differing_from_lake": differ, "ids_checked": sum(len(v) for v in self.seen.values())}
               if self.check_ids else {}),
        }


def troupe_run(args: argparse.Namespace, root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    import httpx
    import psutil

    (root / "teams" / "bench").mkdir(parents=True)
    (root / "teams" / "bench" / "team.yaml").write_text(team_yaml(args.turns))
    port = free_port()
    config = root / "server.json"
    settings: dict[str, Any] = {"local": True, "lake": str(root / "lake"), "teams": [str(root / "teams")],
                                "checkpoints": False, "port": port, "max_sessions": max(256, args.sessions),
                                "keys_path": str(root / "keys.json")}
    config.write_text(json.dumps(settings))
    # Every client here is the one keyless local user: lift the per-key rate limit (60 requests at once by
    # default, which 200 streams opened together exceed) so the figures are the stream's, not the limiter's.
    env = {**os.environ, "TROUPE_SERVE_CONFIG": str(config), "TROUPE_HOME": str(root / "home"),
           "TROUPE_RATE_LIMIT": "100000:100000"}
    child = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "benchmarks.serve:troupe_app",
                              "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                             cwd=REPO, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the Troupe server did not start")
            time.sleep(0.1)
        proc = psutil.Process(child.pid)
        load = Load(url, sessions=args.sessions, clients=args.clients, turns=args.turns, interval=args.interval,
                    check_ids=True)
        figures = asyncio.run(load.run(lambda: proc.memory_info().rss))
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
    turn = [e for e in load.recorded if e.get("turn") == 2] or load.recorded[:8]
    return figures, turn


def serve_run(args: argparse.Namespace, turn: list[dict[str, Any]]) -> dict[str, Any]:
    import psutil
    import ray
    from ray import serve

    from benchmarks.support.bare_serve import BareSessions

    port = free_port()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(BareSessions.bind(turn), name="bare", route_prefix="/")

        def rss() -> int:
            mine = psutil.Process().children(recursive=True)
            total = 0
            for p in mine:
                try:
                    if any(k in " ".join(p.cmdline()) for k in ("ServeReplica", "ProxyActor")):
                        total += p.memory_info().rss
                except psutil.Error:
                    continue
            return total

        load = Load(f"http://127.0.0.1:{port}", sessions=args.sessions, clients=args.clients, turns=args.turns,
                    interval=args.interval)
        return asyncio.run(load.run(rss))
    finally:
        serve.shutdown()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds of turns")
    parser.add_argument("--no-serve", action="store_true", help="leave out the bare Ray Serve baseline")
    args = parse_args(parser, argv=argv, smoke={"sessions": 4, "clients": 8, "turns": 2, "interval": 0.3, "no_serve": True})
    with tempfile.TemporaryDirectory(prefix="troupe-serve-bench-") as tmp:
        troupe, turn = troupe_run(args, Path(tmp))
    out: dict[str, Any] = {"sessions": args.sessions, "clients": args.clients, "turns": args.turns,
                           "troupe": troupe, "events_per_turn": len(turn)}
    print(f"troupe server: {json.dumps(troupe)}", flush=True)
    if not args.no_serve:
        bare = serve_run(args, turn)
        print(f"bare Ray Serve: {json.dumps(bare)}", flush=True)
        out["bare_serve"] = bare
        out["ratios"] = {
            key: round(troupe[key] / bare[key], 2) if troupe.get(key) and bare.get(key) else None
            for key in ("session_create_per_s", "delay_ms_p50", "delay_ms_p99", "rss_per_stream_kb")}
    ok = troupe["streams"] == args.clients and troupe["streams_unfinished"] == 0 and troupe["events_timed"] > 0 \
        and not troupe.get("ids_differing_from_lake")
    out["ok"] = ok
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

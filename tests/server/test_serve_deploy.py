"""The API deployed with Ray Serve on the session-wide test Ray, over real HTTP: create, result, the
event stream resumed with ``Last-Event-ID``, the shared directory, and writes to a live session taken by
either of two replicas (the proxy spreads them) reaching the one that holds it (one start of Serve)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import ray
import yaml

from tests.server.conftest import LiveServer, free_port
from tests.server.test_turn_cancel_http import TEAM as CONVERSING
from troupe.runtime.server.forward import ForwardStats
from troupe.runtime.server.relay import HOLDER_HEADER, REPLICA_HEADER
from troupe.runtime.server.settings import ServerSettings

pytestmark = [pytest.mark.serve]
MAX_TURNS = 20
"""Turns sent until one taken by the replica that does not hold the session was accepted (each is, with
probability 1/2 if the proxy picks either replica: all 20 missing it, about one run in a million)."""


def _turn(client: httpx.Client, sid: str, text: str, holders: set[str]) -> bool:
    """Send a turn once the one before has finished (one under way is refused 400, by the holder); whether
    the replica that took it forwarded it."""
    deadline = time.monotonic() + 30
    while True:
        r = client.post(f"/sessions/{sid}/turns", json={"input": text})
        holders.add(r.headers[HOLDER_HEADER])
        if r.status_code == 202:
            return r.headers[REPLICA_HEADER] != r.headers[HOLDER_HEADER]
        assert r.status_code == 400 and "still under way" in r.json()["reason"], r.text
        assert time.monotonic() < deadline, "a turn did not finish"
        time.sleep(0.05)


def _pool_scopes() -> set[str]:
    """The runtimes (job and scope) that have a pool of packed hosts on this Ray: ``troupe-pool-<lake>-<job>-<i>``."""
    from ray.util import list_named_actors

    names = [a["name"] for a in list_named_actors(all_namespaces=True) if a["name"].startswith("troupe-pool-")]
    return {name.rsplit("-", 1)[0] for name in names if "-serve-" in name}


@pytest.mark.usefixtures("ray_session")
def test_serve_deployment_two_replicas_writes_stream_and_directory(tmp_path: Path) -> None:
    from ray import serve

    from troupe.runtime.server.deploy import NAMESPACE, build_deployment, directory_name, remove_directory

    teams = tmp_path / "teams"
    (teams / "canceller").mkdir(parents=True)
    (teams / "canceller" / "team.yaml").write_text(yaml.safe_dump(CONVERSING))
    settings = ServerSettings(lake=str(tmp_path / "lake"), teams=[str(teams)], num_replicas=2,
                              app_name=f"troupe-test-{uuid.uuid4().hex[:8]}")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_deployment(settings), name=settings.app_name, route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as client:
            live = LiveServer(url=f"http://127.0.0.1:{port}", lake=tmp_path / "lake", client=client)
            assert client.get("/health").json()["ok"] is True
            created = client.post("/sessions", json={"team": "canceller", "input": "turn 1", "conversation": True})
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            assert created.json()["user"] == "local"
            # writes to the live conversation, whichever replica the proxy hands them to
            holders: set[str] = set()
            accepted = ["turn 1"]
            forwarded = 0
            while len(accepted) < MAX_TURNS and (forwarded == 0 or len(accepted) < 3):
                accepted.append(f"turn {len(accepted) + 1}")
                forwarded += _turn(client, sid, accepted[-1], holders)
            assert forwarded >= 1, f"none of {len(accepted) - 1} turns reached the replica not holding the session"
            _turn(client, sid, "last", holders)  # accepted once every turn before it had finished
            assert len(holders) == 1  # every answer came from the one holder
            cancelled = client.post(f"/sessions/{sid}/cancel")
            assert cancelled.status_code == 202, cancelled.text
            result = client.get(f"/sessions/{sid}/result", params={"wait_s": 30}).json()
            assert result["status"] == "cancelled", result
            frames = live.sse(f"/sessions/{sid}/events")
            assert frames[-1]["event"] == "end"
            events = frames[:-1]
            assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))
            assert events[0]["event"] == "session.started" and "session.finished" in [f["event"] for f in events]
            finished = [json.loads(f["data"]["payload"])["input"] for f in events if f["event"] == "turn.finished"]
            assert finished[:len(accepted)] == accepted  # nothing lost, nothing twice
            rest = live.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": "2"})
            assert [f["data"]["event_id"] for f in rest[:-1]] == [f["data"]["event_id"] for f in events[2:]]
            # packed sessions, taken by either replica: each replica's runtime has its own pool (and event log and
            # scheduler), so the second one's pool does not collide with the first's, nor its stop end the other's
            pools: set[str] = set()
            for i in range(MAX_TURNS):
                r = client.post("/sessions", json={"team": "canceller", "input": f"packed {i}", "placement": "packed"})
                assert r.status_code == 201, r.text
                done = client.get(f"/sessions/{r.json()['id']}/result", params={"wait_s": 30}).json()
                assert done["status"] == "completed", done
                pools = _pool_scopes()
                if len(pools) == 2:
                    break
            assert len(pools) == 2, f"packed sessions ran in the pools of {pools} only"
            deadline = time.monotonic() + 10  # the replica records the end in the shared directory
            while client.get(f"/sessions/{sid}").json()["status"] != "cancelled":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        directory = ray.get_actor(directory_name(settings), namespace=NAMESPACE)
        assert sid in ray.get(directory.all.remote())[0]
        stats = ForwardStats.model_validate_json(ray.get(directory.forward_stats.remote()))
        assert stats.answered >= forwarded and stats.timed_out == stats.gone == 0
        # each replica polls for what is forwarded to it once it holds a session (the packed ones: both)
        assert holders < set(stats.holders) and len(stats.holders) == 2, (holders, stats.holders)
    finally:
        serve.delete(settings.app_name)
        remove_directory(settings)
        serve.shutdown()
    with pytest.raises(ValueError):
        ray.get_actor(directory_name(settings), namespace=NAMESPACE)

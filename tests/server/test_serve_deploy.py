"""The API deployed with Ray Serve on the session-wide test Ray, over real HTTP: create, result, the
event stream resumed with ``Last-Event-ID``, the shared directory (one start of Serve: a few seconds)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest
import ray

from tests.server.conftest import LiveServer, free_port, write_teams
from troupe.runtime.server.settings import ServerSettings

pytestmark = [pytest.mark.serve]


@pytest.mark.usefixtures("ray_session")
def test_serve_deployment_create_result_and_stream(tmp_path: Path) -> None:
    from ray import serve

    from troupe.runtime.server.deploy import NAMESPACE, build_deployment, directory_name, remove_directory

    teams = tmp_path / "teams"
    write_teams(teams, tmp_path / "approved.txt")
    settings = ServerSettings(lake=str(tmp_path / "lake"), teams=[str(teams)], num_replicas=1,
                              placement="packed", app_name=f"troupe-test-{uuid.uuid4().hex[:8]}")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_deployment(settings), name=settings.app_name, route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30) as client:
            live = LiveServer(url=f"http://127.0.0.1:{port}", lake=tmp_path / "lake", client=client)
            assert client.get("/health").json()["ok"] is True
            created = client.post("/sessions", json={"team": "echo", "input": "hi"})
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            assert created.json()["user"] == "local"
            result = client.get(f"/sessions/{sid}/result", params={"wait_s": 30}).json()
            assert result == {"status": "completed", "output": "hello back", "error": None}
            frames = live.sse(f"/sessions/{sid}/events")
            assert frames[-1]["event"] == "end"
            events = frames[:-1]
            assert [int(f["id"]) for f in events] == list(range(1, len(events) + 1))
            assert events[0]["event"] == "session.started" and "session.finished" in [f["event"] for f in events]
            rest = live.sse(f"/sessions/{sid}/events", headers={"Last-Event-ID": "2"})
            assert [f["data"]["event_id"] for f in rest[:-1]] == [f["data"]["event_id"] for f in events[2:]]
            deadline = time.monotonic() + 10  # the replica records the end in the shared directory
            while client.get(f"/sessions/{sid}").json()["status"] != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        directory = ray.get_actor(directory_name(settings), namespace=NAMESPACE)
        assert sid in ray.get(directory.all.remote())[0]
    finally:
        serve.delete(settings.app_name)
        remove_directory(settings)
        serve.shutdown()
    with pytest.raises(ValueError):
        ray.get_actor(directory_name(settings), namespace=NAMESPACE)

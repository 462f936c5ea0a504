"""Eval routes over real HTTP with keys: a sweep started in the background, its progress, pass rates per
cell with failing samples that name their sessions (owned by the caller), sweeps in ``/runs``, and
another user's key refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import yaml

from tests.access.conftest import Keyed, keyed  # noqa: F401  (the server with keys)


def write_suite(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "team.yaml").write_text(yaml.safe_dump({
        "name": "greeter", "entry": "lead", "default_model": "m", "agents": [{"id": "lead"}],
        "models": {"m": {"provider": "scripted", "scripts": {"lead": [{"text": "hello back"}]}}}}))
    (folder / "suite.yaml").write_text(yaml.safe_dump({"name": "http-suite", "team": "team.yaml",
                                                       "cases": "cases.jsonl"}))
    cases = [{"id": "greets", "input": "hi", "expect": {"contains": ["hello"]}},
             {"id": "wrong", "input": "hi", "expect": {"contains": ["goodbye"]}},
             {"id": "left-out", "input": "hi", "expect": {"contains": ["hello"]}}]
    (folder / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")


def wait_finished(client: httpx.Client, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/evals/{run_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running" or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.1)


def test_a_sweep_over_http(keyed: Keyed) -> None:
    write_suite(keyed.lake.parent / "teams" / "evsuite")
    with keyed.as_("alice") as alice, keyed.as_("bob") as bob, keyed.as_("root") as root, keyed.as_("vic") as vic:
        r = alice.post("/evals", json={"suite": "evsuite", "limit": 2, "epochs": 2, "concurrency": 2})
        assert r.status_code == 202, r.text
        run_id = r.json()["run_id"]
        progress = wait_finished(alice, run_id)
        assert progress["status"] == "finished" and progress["user"] == "alice", progress
        assert (progress["total"], progress["done"], progress["passed"]) == (4, 4, 2)
        results = alice.get(f"/evals/{run_id}/results").json()
        [cell] = results["cells"]
        assert (cell["samples"], cell["passed"], cell["pass_rate"]) == (4, 2, 0.5)
        assert results["overall"]["samples"] == 4 and results["suite"] == "http-suite"
        assert sorted(f["case_id"] for f in cell["failing"]) == ["wrong", "wrong"]
        for failing in cell["failing"]:  # each links to its session, which is alice's
            timeline = alice.get(f"/sessions/{failing['session_id']}/timeline")
            assert timeline.status_code == 200 and '"user":"alice"' in timeline.json()[0]["payload"]
            assert bob.get(f"/sessions/{failing['session_id']}").status_code == 403
        sweeps = [x for x in alice.get("/runs").json() if x["kind"] == "sweep"]
        assert [(x["run_id"], x["user"], x["status"]) for x in sweeps] == [(run_id, "alice", "finished")]
        assert [x for x in bob.get("/runs").json() if x["kind"] == "sweep"] == []
        assert run_id in [x["run_id"] for x in root.get("/runs").json() if x["kind"] == "sweep"]
        for path in (f"/evals/{run_id}", f"/evals/{run_id}/results"):
            assert bob.get(path).status_code == 403 and root.get(path).status_code == 200
        assert alice.get("/evals/nope").status_code == 404
        assert vic.post("/evals", json={"suite": "evsuite"}).status_code == 403  # a viewer cannot start one
        for suite in ("/etc", "../", "missing"):
            refused = alice.post("/evals", json={"suite": suite})
            assert refused.status_code == 400 and "team folders" in refused.json()["reason"], refused.text
        again = alice.post("/evals", json={"suite": "evsuite", "limit": 2, "epochs": 2})
        assert again.status_code == 202 and again.json()["run_id"] == run_id  # the same sweep: resumed, nothing to run
        assert wait_finished(alice, run_id)["done"] == 4

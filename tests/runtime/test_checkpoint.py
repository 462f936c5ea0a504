"""The checkpoint store and its parts, without Ray: files, formats, ordering of saves, results
that keep their types, on local disk and on S3."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.runtime.teams import team
from tests.support.s3_server import S3Server, s3_server  # noqa: F401  (fixture)
from troupe.runtime.config import Placement
from troupe.runtime.ids import IdScope, MessageId, SessionId
from troupe.runtime.session.task_model import Task, TaskStatus
from troupe.runtime.storage.checkpoint import (
    ActorCheckpoint,
    CheckpointError,
    CheckpointStore,
    Saver,
    SessionManifest,
    SessionNotFoundError,
    checkpoint_location,
    portable,
    revive,
)


def _manifest(sid: str = "s-1") -> SessionManifest:
    return SessionManifest(session_id=SessionId(sid), run_id="r-1", team=team([{"id": "lead"}]),
                           placement=Placement.DEDICATED)


def _actor(sid: str, name: str, seq: int, **state: object) -> ActorCheckpoint:
    return ActorCheckpoint(session_id=SessionId(sid), name=name, kind="supervisor" if name == "session" else "agent",
                           seq=seq, saved_at=datetime.now(UTC), state=dict(state))


def test_manifest_and_actors_round_trip(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    store.save_manifest(_manifest())
    store.save_actor(_actor("s-1", "lead", 1, turns=1))
    store.save_actor(_actor("s-1", "lead", 2, turns=2))  # replaces the older file
    store.save_actor(_actor("s-1", "worker.helper", 1, turns=0))
    assert store.load_manifest("s-1").team.entry == "lead"
    actors = store.load_actors("s-1")
    assert {n: (cp.seq, cp.state["turns"]) for n, cp in actors.items()} == {"lead": (2, 2), "worker.helper": (1, 0)}
    assert store.load_actors("s-1", names=["session", "lead"]).keys() == {"lead"}
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "no temporary files left"


def test_summaries_give_each_session_its_supervisor_status(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for sid in ("s-1", "s-2"):
        store.save_manifest(_manifest(sid))
    store.save_actor(_actor("s-1", "session", 3, status="completed", result={"reply": "42", "error": None}))
    rows = {s.session_id: s for s in store.summaries()}
    assert rows["s-1"].status == "completed" and rows["s-1"].reply == "42"
    assert rows["s-2"].status == "running" and rows["s-2"].saved_at is None  # started, never checkpointed


def test_unknown_session_and_unknown_format_say_what_to_do(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    with pytest.raises(SessionNotFoundError, match="troupe sessions list"):
        store.load_manifest("s-missing")
    raw = json.loads(_manifest().model_dump_json())
    raw["format"] = 99
    (tmp_path / "sessions" / "s-1").mkdir(parents=True)
    (tmp_path / "sessions" / "s-1" / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="format 99"):
        store.load_manifest("s-1")


def test_tool_results_keep_their_types() -> None:
    now = datetime.now(UTC)
    task = Task(id="t-1", session_id="s-1", created_by="lead", goal="g", status=TaskStatus.DONE, output={"n": 1},
                created_at=now, updated_at=now)
    value = {"tasks": [task], "n": 2, "text": "x", "none": None, "nested": {"__model__": "not a model"}}
    back = revive(json.loads(json.dumps(portable(value))))
    assert back == value and isinstance(back["tasks"][0], Task)


async def test_saver_writes_in_order_and_coalesces(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    state = {"n": 0}
    written: list[int] = []
    real = store.save_actor

    def save(cp: ActorCheckpoint) -> None:
        written.append(cp.state["n"])
        real(cp)

    store.save_actor = save  # type: ignore[method-assign]
    saver = Saver(store, lambda seq: _actor("s-1", "lead", seq, n=state["n"]), seq=5)

    async def change_and_save(n: int) -> None:
        state["n"] = n
        await saver.save()
        assert store.load_actors("s-1")["lead"].state["n"] >= n  # durable once save() returns

    await asyncio.gather(*(change_and_save(n) for n in range(1, 21)))
    assert written == sorted(written) and written[-1] == 20
    assert len(written) < 20  # saves asked for while one was written went out together
    assert store.load_actors("s-1")["lead"].seq == 5 + len(written)


def test_id_scopes_repeat_their_ids_and_stay_apart() -> None:
    def ids(prefix: str) -> list[str]:
        token = IdScope(prefix).enter()
        try:
            return [MessageId.new() for _ in range(3)]
        finally:
            IdScope.exit(token)

    assert ids("s:lead:turn:1") == ids("s:lead:turn:1")
    assert not set(ids("s:lead:turn:1")) & set(ids("s:lead:turn:2"))
    assert MessageId.new() != MessageId.new()  # outside a scope: unique


def test_checkpoint_location_defaults_to_the_lake(tmp_path: Path) -> None:
    assert checkpoint_location(tmp_path / "lake", True) == str(tmp_path / "lake" / "checkpoints")
    assert checkpoint_location(tmp_path / "lake", False) is None
    assert checkpoint_location(tmp_path / "lake", str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere")


def test_store_on_s3(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket("ckpt")
    store = CheckpointStore(s3_server.uri(bucket, "lake/checkpoints"))
    store.save_manifest(_manifest())
    store.save_actor(_actor("s-1", "lead", 1, turns=1))
    store.record_tool("s-1", "k1", {"ok": True})
    assert store.load_actors("s-1")["lead"].state == {"turns": 1}
    assert store.recorded_tool("s-1", "k1") == (True, {"ok": True})
    assert store.recorded_tool("s-1", "k2") == (False, None)
    assert [s.session_id for s in store.summaries()] == ["s-1"]
    assert "lake/checkpoints/sessions/s-1/manifest.json" in s3_server.keys(bucket)

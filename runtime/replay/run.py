"""Run a replay or a fork of a recorded session, on any placement of a :class:`~troupe.runtime.api.Troupe`.

    report = await troupe.replay(session_id)          # zero model calls, zero tool side effects
    result = await troupe.fork(session_id, at="2", set={"agents.0.instructions": "..."})
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from troupe.runtime.agent.recorded import ReplayPlan
from troupe.runtime.config import TeamConfig
from troupe.runtime.errors import ConfigError
from troupe.runtime.ids import SUPERVISOR, RunId, SessionId
from troupe.runtime.replay.compare import Divergence, first_divergence, step_counts
from troupe.runtime.replay.fork import fork_plan, fork_point, parse_value, set_path
from troupe.runtime.replay.record import SessionRecord, load_record, read_rows
from troupe.runtime.replay.steps import resolve_step
from troupe.runtime.session.handle import Session
from troupe.runtime.session.spec import SessionSpec
from troupe.runtime.session.supervisor import SessionResult, SessionStatus

if TYPE_CHECKING:
    from troupe.runtime.api import Troupe

DEFAULT_TIMEOUT_S = 300.0


class ReplayReport(BaseModel):
    """How a replay went (``troupe replay --json`` prints it)."""

    source: str
    """The recorded session."""
    session_id: str
    """The replay: a new session in the lake, its ``session.started`` saying ``replay_of``."""
    run_id: str
    identical: bool
    """The replay took the recorded path: same steps per agent, same service changes, same reply."""
    exact: bool
    """False when the record cut some text (``truncated``): what was served was cut too."""
    status: str
    """The replay session's status (a divergence the recorded model noticed fails it)."""
    recorded_status: str | None = None
    reply: str | None = None
    recorded_reply: str | None = None
    error: str | None = None
    """The replay session's error, if it did not complete (a divergence: what the recorded model saw)."""
    divergence: Divergence | None = None
    """The first event where the replay differs from the record (``None``: none)."""
    steps: dict[str, int] = {}
    """Compared steps per agent (and service) in the record."""
    duration_s: float = 0.0

    def summary(self) -> str:
        head = (f"replay {self.session_id} of {self.source}: {'identical' if self.identical else 'DIVERGED'} "
                f"({self.status}; {sum(self.steps.values())} steps compared{'' if self.exact else ', record truncated'})")
        lines = [head]
        if self.divergence is not None:
            lines.append(f"first divergence: {self.divergence.describe()}")
        if self.error:
            lines.append(f"error: {self.error}")
        if self.reply is not None:
            lines.append(f"reply: {self.reply}")
        return "\n".join(lines)


def _spec(troupe: Troupe, team: TeamConfig, plan: ReplayPlan, conversation: bool, lineage: dict[str, str]) -> SessionSpec:
    return SessionSpec(session_id=SessionId.new(), run_id=RunId.new(), team=team, placement=troupe.placement,
                       conversation=conversation, lake=troupe.lake, replay=plan, lineage=lineage)


async def _drive(troupe: Troupe, spec: SessionSpec, inputs: list[str], timeout: float | None) -> SessionResult:
    """Start ``spec``'s session, send the user's messages in order (each a turn in a conversation),
    and return how it ended."""
    await troupe.backend.start_session(spec)
    session = Session(troupe.backend, spec)
    try:
        if not spec.conversation or spec.team.user is not None:
            return await session.run(inputs[0], timeout=timeout)
        result: SessionResult | None = None
        for text in inputs:
            await session.send(text)
            try:
                result = await session.result(timeout=timeout)
            except TimeoutError:
                await session.cancel(f"no reply within {timeout}s")
                return await troupe.backend.call(spec.session_id, SUPERVISOR, "wait", {"timeout": 30})
            if result.status is not SessionStatus.RUNNING:
                return result
        return await session.end()
    finally:
        await session.close()
        await troupe.backend.flush()


async def _record(troupe: Troupe, session_id: str, lake: str | Path | None) -> SessionRecord:
    if lake is None:
        await troupe.backend.flush()
    return await asyncio.to_thread(load_record, lake or troupe.lake, session_id)


async def replay_session(troupe: Troupe, session_id: str, *, lake: str | Path | None = None,
                         timeout: float | None = DEFAULT_TIMEOUT_S) -> ReplayReport:
    """Run ``session_id``'s record again (from ``lake``, default the runtime's) with zero model calls
    and zero tool side effects, and compare the path it takes with the record."""
    started = time.perf_counter()
    record = await _record(troupe, session_id, lake)
    plan = ReplayPlan(source=session_id, agents=record.recordings())
    spec = _spec(troupe, record.team(), plan, record.conversation, {"replay_of": session_id})
    result = await _drive(troupe, spec, record.inputs(), timeout)
    replayed = await asyncio.to_thread(read_rows, troupe.lake, str(spec.session_id))
    divergence = first_divergence(record.rows, replayed)
    identical = divergence is None and result.reply == record.reply and str(result.status) == (record.status or "")
    return ReplayReport(
        source=session_id, session_id=str(spec.session_id), run_id=str(spec.run_id), identical=identical,
        exact=not record.truncated, status=str(result.status), recorded_status=record.status, reply=result.reply,
        recorded_reply=record.reply, error=result.error, divergence=divergence, steps=step_counts(record.rows),
        duration_s=round(time.perf_counter() - started, 3))


async def fork_session(troupe: Troupe, session_id: str, *, at: str | int | None = None, model: str | None = None,
                       set: Mapping[str, Any] | None = None, tool_results: Mapping[str, str] | None = None,  # noqa: A002
                       input: str | None = None, lake: str | Path | None = None,  # noqa: A002
                       timeout: float | None = DEFAULT_TIMEOUT_S) -> SessionResult:
    """Replay ``session_id`` up to ``at`` (an event id, a user turn, or a named step of
    :mod:`troupe.runtime.replay.steps` such as ``after-first-tool-result``), then go on live with the changes:
    ``model`` for every agent, ``set`` edits of the team config (``{"agents.0.instructions": "..."}``),
    ``tool_results`` replacing recorded results by call id, ``input`` the user's message of the turn
    the fork starts. The fork is a new session whose ``session.started`` names ``forked_from`` and ``fork_point``."""
    record = await _record(troupe, session_id, lake)
    config = record.team().model_dump(mode="json", by_alias=True)
    for path, value in (set or {}).items():
        set_path(config, path, parse_value(value) if isinstance(value, str) else value)
    team = TeamConfig.model_validate(config)
    if model is not None:
        team = team.with_model(model)
    overrides = dict(tool_results or {})
    point = resolve_step(record, at) if at is not None else fork_point(record, None, overrides)
    inputs = record.inputs()
    if input is not None:
        turn = point.turn or (max((r.turn or 0) for r in record.rows[: point.index + 1]) + 1 if record.conversation else 1)
        if turn > 1 and not record.conversation:
            raise ConfigError("input= replaces a user turn's message: fork a one-shot session at turn 1, or a "
                              "conversation at a turn or an event", session=session_id)
        inputs = [*inputs, *([""] * (turn - len(inputs)))]
        inputs[turn - 1] = input
    plan = fork_plan(record, point, overrides)
    spec = _spec(troupe, team, plan, record.conversation, {"forked_from": session_id, "fork_point": point.label})
    return await _drive(troupe, spec, inputs, timeout)


__all__ = ["DEFAULT_TIMEOUT_S", "ReplayReport", "fork_session", "replay_session"]

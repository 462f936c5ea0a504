"""A recorded three-agent session for the OpenTelemetry tests: the demo team (a lead and two tool
workers) on its scripted model, with a planted secret in the user's input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from troupe.runtime import Troupe
from troupe.runtime.demo import demo_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events import Event
from troupe.runtime.redact import register_secret

PLANTED = "sk-troupeOtelPlanted0123456789"
"""An API-key-shaped string the user pastes into the input: redacted by pattern."""
REGISTERED = "hunter2-otel-registered-secret"
"""A secret registered with the redactor (as an API key read from the environment is)."""
QUESTION = (f"What is 1234 * 5678, and what time is it in Asia/Kolkata when it is 12:00 in UTC? "
            f"My key is {PLANTED}, my password {REGISTERED}.")


@dataclass
class Recorded:
    lake: str
    session_id: str
    run_id: str
    events: list[Event]

    def lake_tokens(self) -> tuple[int, int]:
        """The session's input and output tokens, summed by DuckDB over the lake."""
        row = query(self.lake, "SELECT coalesce(sum(tokens_in), 0) i, coalesce(sum(tokens_out), 0) o FROM events "
                               f"WHERE session_id = '{self.session_id}'").to_pylist()[0]
        return int(row["i"]), int(row["o"])

    def count(self, event_type: str) -> int:
        return sum(1 for e in self.events if e.type == event_type)


def read_session(lake: str, session_id: str) -> Recorded:
    table = query(lake, f"SELECT * EXCLUDE (date) FROM events WHERE session_id = '{session_id}' ORDER BY ts, seq")
    events = [Event.model_validate(r) for r in table.to_pylist()]
    return Recorded(lake=lake, session_id=session_id, run_id=events[0].run_id, events=events)


async def record_demo(lake: Path, troupe: Troupe | None = None) -> Recorded:
    """Run the demo team once (scripted model) and read its events back from the lake."""
    register_secret(REGISTERED)
    own = troupe is None
    troupe = troupe or Troupe.local(lake=lake)
    try:
        result = await troupe.run(demo_team(), QUESTION, model="scripted", timeout=60)
        assert getattr(result.status, "value", result.status) == "completed", result
    finally:
        if own:
            await troupe.shutdown()
    return read_session(str(troupe.lake), result.session_id)

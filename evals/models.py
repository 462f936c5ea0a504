"""What an eval is made of, and what it produces: suites, cases, expectations, grades, result rows.

Everything here crosses a process or goes to disk, so it is pydantic. The file formats:

* a suite is YAML (:class:`Suite`): its name, the team its cases run on, where its cases are, how
  samples are graded and what gates a run must pass;
* cases are JSON Lines (:class:`Case`), one per line, next to the suite;
* a sweep writes one :class:`SampleResult` row per sample to Parquet beside the event lake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from troupe.runtime.config import DeclaredTool
from troupe.runtime.events import Event


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatTurn(_Strict):
    role: Literal["system", "user", "assistant"] = "user"
    content: str


class ExpectedCall(_Strict):
    """One tool call the model should make.

    ``arguments`` maps a parameter to its acceptable values (any one matches); ``""`` among them
    means the argument may be left out. A plain value is shorthand for a one-value list.
    """

    name: str
    arguments: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("arguments", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (x if isinstance(x, list) else [x]) for k, x in v.items()}
        return v


class SqlCheck(_Strict):
    """A query over the sample's own events (the view ``events`` holds only that session's rows).

    It must return one row whose first column is a boolean (pass/fail) or a number in [0, 1].
    """

    name: str = "sql"
    query: str
    """E.g. ``select count(*) = 0 from events where type = 'guardrail.denied'``."""


class JudgeSpec(_Strict):
    """An LLM judge: ``profile`` (a model profile of the team or the suite) grades the reply against ``rubric``."""

    profile: str
    rubric: str
    pass_score: float = Field(default=0.5, ge=0, le=1)


class Expect(_Strict):
    """What a case's sample is graded against; each field present adds one grader."""

    exact: str | None = None
    """The reply, stripped, equals this."""
    contains: list[str] | None = None
    """The reply contains every one of these (case-insensitive)."""
    regex: str | None = None
    """The reply matches this regular expression (``re.search``)."""
    json_value: Any | None = Field(default=None, alias="json")
    """The reply parses as JSON equal to this."""
    json_schema: dict[str, Any] | None = None
    """The reply parses as JSON valid under this schema."""
    tool_calls: list[ExpectedCall] | None = None
    """The tool calls the session made (from its ``tool.call`` events) match these, in any order,
    one to one; extra calls fail."""
    sql: list[SqlCheck] | None = None
    python: str | None = None
    """``package.module:function`` called with ``(sample: GradeInput)`` returning a :class:`Grade`, a
    bool or a float in [0, 1]."""
    judge: JudgeSpec | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("contains", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v


class Case(_Strict):
    id: str
    input: str | list[ChatTurn]
    team: str | None = None
    """A team file for this case (relative to the suite); default: the suite's."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Team fields to change, as dotted paths: ``{"agents.0.instructions": "...", "budgets.max_tokens": 2000}``."""
    tools: list[DeclaredTool] = Field(default_factory=list)
    """Schema-only tools given to the entry agent for this case."""
    tags: list[str] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)
    weight: float = Field(default=1.0, ge=0)
    required: bool = False
    """A required case must pass in every cell, or the run fails its gate."""


class GraderWeight(_Strict):
    grader: str
    """``exact``, ``contains``, ``regex``, ``json``, ``json_schema``, ``tool_calls``, ``sql``, ``python``, ``judge``."""
    weight: float = Field(default=1.0, ge=0)


class Gates(_Strict):
    min_pass_rate: float | None = Field(default=None, ge=0, le=1)
    """Every cell's pass rate must reach this."""
    max_drop: float | None = Field(default=None, ge=0, le=1)
    """``compare``: no cell's pass rate may fall by more than this against the baseline."""
    required_cases: list[str] = Field(default_factory=list)
    """Cases that must pass (in addition to cases marked ``required``)."""


class Suite(_Strict):
    name: str
    description: str = ""
    team: str
    """The team file the cases run on (relative to the suite file)."""
    cases: str = "cases.jsonl"
    """The JSON Lines file of cases (relative to the suite file)."""
    weights: list[GraderWeight] = Field(default_factory=list)
    """How graders combine into a sample's score (weighted mean; a grader not listed weighs 1)."""
    pass_threshold: float = Field(default=1.0, ge=0, le=1)
    """A sample passes when its score reaches this and no grader marked it failed-required."""
    gates: Gates = Field(default_factory=Gates)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    """Default grid (``--grid`` adds to it): ``model``, ``seed``, ``prompt`` or any team field path."""
    samples: int = Field(default=1, ge=1)
    timeout_s: float = Field(default=120.0, gt=0)
    """Per sample."""
    license: str | None = None
    """Where the cases come from and under what terms (shown in reports)."""
    python_path: list[str] = Field(default_factory=list)
    """Folders (relative to the suite file) put on ``sys.path`` for the suite's ``python:`` graders and
    function models, here and in the hosts that run its samples (no ``PYTHONPATH`` needed)."""


class Grade(BaseModel):
    grader: str
    score: float = Field(ge=0, le=1)
    passed: bool
    explanation: str = ""


class GradeInput(BaseModel):
    """What a grader sees of one sample."""

    case: Case
    reply: str | None
    status: str
    session_id: str
    run_id: str
    lake: str
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """``{"name": ..., "arguments": {...}}`` per call the session made, in order (declared-tool names
    mapped back to the case's own names)."""
    sample: int = 0
    """The sample's index among the case's samples in its cell."""
    cell: dict[str, Any] = Field(default_factory=dict)
    """The grid values the sample ran with (``{}`` for no grid)."""
    team: dict[str, Any] | None = None
    """The team as run (``TeamConfig`` dumped: the case's overrides, the cell's settings applied)."""
    final_state: dict[str, Any] | None = None
    """What the environment's teardown captured (None without an environment)."""
    env_dir: str | None = None
    """The sample's environment directory (``${sample_dir}``), when it had one."""
    _events: list[Event] | None = PrivateAttr(default=None)

    @property
    def events(self) -> list[Event]:
        """The session's events from the lake, in order (read on first use, then kept)."""
        if self._events is None:
            from troupe.runtime.eventlog.lake import query

            if not self.session_id:
                self._events = []
            else:
                sid, rid = self.session_id.replace("'", "''"), self.run_id.replace("'", "''")
                rows = query(self.lake, f"select * from events where run_id = '{rid}' and session_id = '{sid}' "
                                        f"order by ts, seq").to_pylist()
                self._events = [Event.model_validate(r) for r in rows]
        return self._events

    def with_events(self, events: list[Event]) -> GradeInput:
        """This input with ``events`` given instead of read from the lake (tests, in-memory runs)."""
        self._events = list(events)
        return self


class SampleResult(BaseModel):
    """One row of a sweep's results table."""

    run_id: str
    suite: str
    sample_id: str
    """Stable for (cell, case, sample index): a re-run of the sweep skips ids it already has."""
    cell: str
    """The grid values, as canonical JSON (``{}`` for no grid)."""
    case_id: str
    sample: int
    tags: list[str] = Field(default_factory=list)
    required: bool = False
    weight: float = 1.0
    status: str
    """The session's status (``completed``, ``failed``, ``budget_exceeded``, ...) or ``error`` when it never ran."""
    error: str | None = None
    reply: str | None = None
    score: float = 0.0
    passed: bool = False
    grades: str = "[]"
    """JSON list of :class:`Grade`."""
    tokens: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    cost_usd: float | None = None
    latency_s: float | None = None
    session_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    forked_from: str | None = None
    """The recorded sample's session this one forked or replayed (``troupe eval run --from-run``; else ``None``)."""
    fork_point: str | None = None
    """Where it left that record: a step label (``after-tool-result:1``), ``turn:1`` for a parent that never
    reached the step (run from the start), ``replay`` for a replay."""


__all__ = [
    "Case",
    "ChatTurn",
    "DeclaredTool",
    "Expect",
    "ExpectedCall",
    "Gates",
    "Grade",
    "GradeInput",
    "GraderWeight",
    "JudgeSpec",
    "SampleResult",
    "SqlCheck",
    "Suite",
]

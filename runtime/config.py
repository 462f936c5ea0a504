"""Team configuration: YAML validated by pydantic, with errors that name the field and the fix."""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from troupe.runtime import capabilities as cap
from troupe.runtime.a2a_config import A2AMember, check_a2a_secrets
from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.errors import TeamConfigError
from troupe.runtime.ids import RESERVED_NAMES, AgentId
from troupe.runtime.mcp_config import McpServerConfig, PermissionLevel, Permissions
from troupe.runtime.safety import RiskConfig, SandboxConfig, SecretRef, WorkspaceConfig
from troupe.runtime.secrets import bind_servers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Placement(StrEnum):
    DEDICATED = "dedicated"
    """Each logical actor is its own named Ray actor."""
    PACKED = "packed"
    """Logical actors share a pool of long-lived async host actors."""


class ScriptToolCall(_Strict):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ScriptStep(_Strict):
    """One scripted model response: text, tool calls, or both."""

    text: str = ""
    tool_calls: list[ScriptToolCall] = Field(default_factory=list)


class RateLimit(_Strict):
    """A per-endpoint request limit, shared by every profile with the same ``base_url`` (the first
    profile to reach the endpoint sets it): a token bucket and/or a cap on requests in flight. On
    Ray it holds across every host of the cluster; without Ray, across the process."""

    requests_per_s: float | None = Field(default=None, gt=0)
    """Sustained request rate (token bucket refill)."""
    burst: int | None = Field(default=None, ge=1)
    """Requests that may start back to back after a quiet spell; default ``max(1, requests_per_s)``."""
    max_concurrent: int | None = Field(default=None, ge=1)
    """Requests in flight at once (each retry attempt counts; backoff sleeps hold no slot)."""
    lease_ttl_s: float = Field(default=600.0, gt=0)
    """A slot whose holder vanished (a crashed worker) is reclaimed after this long."""

    @model_validator(mode="after")
    def _some_limit(self) -> RateLimit:
        if self.requests_per_s is None and self.max_concurrent is None:
            raise ValueError("rate_limit needs 'requests_per_s', 'max_concurrent', or both")
        return self


class CircuitBreakerConfig(_Strict):
    """A model endpoint's circuit breaker: after ``failures`` consecutive failed requests that say the
    endpoint is down (unreachable, timeout, 5xx, a stream cut or garbled), its profile is skipped for
    ``cooldown_s`` while a fallback exists; then one request probes it."""

    failures: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, gt=0)


class ModelProfile(_Strict):
    """How to reach a model. ``provider`` picks the implementation."""

    provider: Literal["openai", "scripted", "function", "local"] = "openai"
    model: str = ""
    """Model name sent to the endpoint (``gpt-4o-mini``, ``qwen2.5``); for ``local`` a GGUF path or ``default``."""
    base_url: str | None = None
    """OpenAI-compatible endpoint, e.g. ``http://localhost:11434/v1``."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key (the key itself never goes in a file)."""
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    """First retry delay; doubles each retry (a Retry-After header wins)."""
    max_backoff_s: float = Field(default=30.0, ge=0)
    fallbacks: list[str] = Field(default_factory=list)
    """Profile names to fail over to, in order, when this one is down after retries."""
    temperature: float | None = None
    max_tokens: int | None = None
    scripts: dict[str, list[ScriptStep]] = Field(default_factory=dict)
    """``scripted`` provider: responses per agent id (``"*"`` for any agent without its own)."""
    function: str | None = None
    """``function`` provider: ``"package.module:callable"`` taking (request, agent) and returning a response."""
    python_path: list[str] = Field(default_factory=list)
    """``function`` provider: folders put on ``sys.path`` before importing ``function`` (a suite's
    ``python_path`` sets it, so hosts on Ray workers find a suite-local module)."""
    parse_text_tool_calls: bool = False
    """Weak models: turn a tool call written as text into a real tool call (declared tools only)."""
    tools_after_results: bool = True
    """If false, the request after tool results omits ``tools`` (stops small models looping)."""
    extra_body: dict[str, Any] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    """Shared limit on requests to this profile's endpoint (a sweep must not hammer one server)."""
    context_retries: int = Field(default=2, ge=0)
    """After a context-length error: how many times the agent compacts its context and retries the round."""
    retry_deadline_s: float | None = Field(default=None, gt=0)
    """Budget retries by time instead of count: a retryable failure is retried (with the usual
    backoff) while this many seconds since the first attempt allow, however many attempts that
    takes; ``max_retries`` then does not apply."""
    circuit_breaker: CircuitBreakerConfig | None = Field(default_factory=CircuitBreakerConfig)
    """Skip this profile's endpoint for a while after it failed repeatedly (``null``: never)."""

    @model_validator(mode="after")
    def _check_provider_fields(self) -> ModelProfile:
        if self.provider == "function" and not self.function:
            raise ValueError("provider 'function' needs 'function: package.module:callable'")
        if self.provider == "openai" and not self.model:
            raise ValueError("provider 'openai' needs 'model' (the model name the endpoint serves)")
        return self


class DeclaredTool(_Strict):
    """A tool known only by its schema: calls are validated, recorded as events and answered with
    ``result``; nothing runs. For eval cases (BFCL's functions) and for stubbing tools out."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    result: str = "ok"


class AgentSpec(_Strict):
    id: AgentId
    name: str = ""
    role: str = ""
    model: str | None = None
    """Model profile name; defaults to the team's ``default_model``."""
    instructions: str = ""
    tools: list[str] = Field(default_factory=list)
    permissions: Permissions = Field(default_factory=Permissions)
    memory: cap.MemoryScope = "none"
    """What the agent remembers across turns and sessions (``project`` needs the team's ``project``)."""
    knowledge: list[str] = Field(default_factory=list)
    """Knowledge namespaces its ``knowledge_search`` tool may read."""
    skills: list[str] = Field(default_factory=list)
    """Skill folders (each with a ``SKILL.md``), relative to the team file or absolute."""
    kind: cap.AgentKind = "agent"
    planner: cap.PlannerSettings = Field(default_factory=cap.PlannerSettings)
    """Used by ``kind: planner`` (see docs/planning.md)."""
    groups: list[str] = Field(default_factory=list)
    """Broadcast topics this agent receives."""
    max_rounds: int = Field(default=8, ge=1)
    """Cap on LLM rounds in one turn."""
    context_tokens: int = Field(default=16_000, ge=256)
    """Context budget; older turns are compacted beyond it."""
    subscriptions: list[str] = Field(default_factory=list)
    """Blackboard key prefixes whose writes wake this agent."""
    publish_results: bool = False
    """Write each reply that completes a task to the blackboard as ``results/<task id>``."""
    parallel_tool_calls: bool = True
    """``false``: the model is asked for one call at a time, and a round's calls run one after another, in order."""
    a2a: A2AMember | None = None
    """A remote A2A agent that this member stands for: its turns call it, not a model (docs/a2a.md)."""

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, v: AgentId) -> AgentId:
        if v in RESERVED_NAMES:
            raise ValueError(f"agent id {v!r} is reserved; pick another (reserved: {sorted(RESERVED_NAMES)})")
        return v


class Budgets(_Strict):
    max_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = Field(default=None, ge=1)
    max_llm_calls: int | None = Field(default=None, ge=1)
    max_wall_s: float | None = Field(default=None, gt=0)


class EnvironmentSpec(_Strict):
    """A stateful environment made for each session (each sample of a sweep) and torn down after it.

    Its MCP servers are the team's ``mcpServers`` with ``scope: session``. Hooks are import paths
    (``pkg.mod:fn``), sync or async, called with an ``EnvironmentContext`` (session_id, run_id, case_id,
    sample, sample_dir, params): ``setup`` before the first turn, ``teardown`` after the last (on every
    exit path), returning the final state (a JSON-able dict) that the session's result and the
    ``environment.captured`` event carry."""

    sample_dir: str | None = None
    """Base folder: each session gets ``<sample_dir>/<session id>``. Default: ``<temp dir>/troupe-samples``."""
    fixture: str | None = None
    """A folder whose contents are copied into the session's sample dir before ``setup`` runs."""
    setup: str | None = None
    teardown: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    """Passed to the hooks as ``ctx.params`` (what a shared hook needs to know about this environment)."""
    keep_dir: bool = True
    """Keep the sample dir after the session (graders read it); ``false`` removes it after teardown."""

    @field_validator("setup", "teardown")
    @classmethod
    def _import_path(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", v):
            raise ValueError(f"a hook is an import path 'package.module:function', not {v!r}")
        return v


USER_SIM = AgentId("user_sim")
"""The id of a team's simulated user (a logical actor hosted with the session)."""


class UserSimSpec(_Strict):
    """A simulated user: an LLM (or scripted/function model) that answers the entry agent's replies as
    the user would, until its answer holds ``stop`` or ``max_turns`` user turns were taken."""

    model: str | None = None
    """Model profile; defaults to the team's ``default_model``."""
    persona: str = ""
    instructions: str = ""
    stop: str = "###STOP###"
    """Put in an answer, it ends the conversation (the entry agent's last reply is the result)."""
    max_turns: int = Field(default=10, ge=1)
    """User turns at most (the first message counts); the conversation ends after that turn's reply."""
    tools: list[str] = Field(default_factory=list)
    first_message: str | None = None
    """The user's first message; then the session's input, if any, is the user's scenario."""
    max_rounds: int = Field(default=4, ge=1)

    def agent_spec(self, default_model: str) -> AgentSpec:
        text = "\n\n".join(t for t in (self.persona.strip(), self.instructions.strip()) if t)
        rule = (f"You are the user talking with an assistant: write only what the user says next. When your "
                f"goal is reached or the conversation should end, include {self.stop} in your message.")
        return AgentSpec(id=USER_SIM, name="the user", role="user", model=self.model or default_model,
                         instructions=f"{text}\n\n{rule}".strip(), tools=self.tools, max_rounds=self.max_rounds)


class TeamConfig(_Strict):
    name: str
    description: str = ""
    entry: AgentId
    """The agent that receives the user's input and whose reply ends the session."""
    default_model: str = "default"
    models: dict[str, ModelProfile] = Field(default_factory=dict)
    agents: list[AgentSpec]
    budgets: Budgets = Field(default_factory=Budgets)
    placement: Placement = Placement.DEDICATED
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict, alias="mcpServers")
    """MCP servers, in the usual ``mcpServers`` shape; their tools are ``<server>__<tool>``."""
    mcp_config: str | None = None
    """A separate ``mcpServers`` JSON file (relative to the team file); merged with ``mcpServers``."""
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    declared_tools: list[DeclaredTool] = Field(default_factory=list)
    """Schema-only tools agents may list by name (see :class:`DeclaredTool`)."""
    approval_timeout_s: float = Field(default=300.0, gt=0)
    """How long a tool call that needs approval waits for a decision; no answer means denied."""
    approval_policy: ApprovalPolicy | None = None
    """Decides gated tool calls by rules instead of waiting for the client (``troupe eval run --approve``)."""
    user: UserSimSpec | None = None
    """A simulated user: sessions become conversations it drives (see docs/conversations.md)."""
    environment: EnvironmentSpec | None = None
    """A per-session environment (sample dir, fixture, setup/teardown hooks); see :class:`EnvironmentSpec`."""
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    """How ``shell`` and opted-in cpu tools are confined (``sandbox: off`` runs them unconfined); see docs/sandbox.md."""
    risk: RiskConfig = Field(default_factory=RiskConfig)
    """Risk scoring of tool calls: untrusted sources, thresholds to ask and to deny; see docs/guardrails.md."""
    project: str | None = None
    """The project whose memory ``memory: project`` agents share (sessions of any team naming it)."""
    memory: cap.MemorySettings = Field(default_factory=cap.MemorySettings)
    knowledge: cap.KnowledgeSettings = Field(default_factory=cap.KnowledgeSettings)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    """Secrets tools get by name (``NAME: env:VAR`` or ``NAME: file:/path``); see docs/secrets.md."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _check_refs(self) -> TeamConfig:
        ids = [a.id for a in self.agents]
        if not ids:
            raise ValueError("a team needs at least one agent under 'agents'")
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"agent ids must be unique; repeated: {dupes}")
        if self.entry not in ids:
            raise ValueError(f"entry {self.entry!r} is not an agent of this team; agents are {ids}")
        for a in self.agents:
            name = a.model or self.default_model
            if name not in self.models:
                raise ValueError(
                    f"agent {a.id!r} uses model profile {name!r}, which is not under 'models' "
                    f"(profiles: {sorted(self.models)})"
                )
        if self.user is not None and (USER_SIM in ids or (self.user.model or self.default_model) not in self.models):
            raise ValueError(f"user: no agent may be named {USER_SIM!r}, and its model profile must be under 'models'")
        for server in self.mcp_servers:
            if not server or "__" in server or not all(c.isalnum() or c in "-_" for c in server):
                raise ValueError(f"MCP server name {server!r} must be letters, digits, '-' or '_' (no '__'); "
                                 f"its tools are named '<server>__<tool>'")
        self.mcp_servers = bind_servers(self.mcp_servers, self.secrets)
        check_a2a_secrets(self.agents, self.secrets)
        cap.check_capabilities(self.project, self.agents)
        for pname, p in self.models.items():
            for fb in p.fallbacks:
                if fb not in self.models:
                    raise ValueError(f"model profile {pname!r} falls back to unknown profile {fb!r}")
        return self

    def agent(self, agent_id: str) -> AgentSpec:
        for a in self.agents:
            if a.id == agent_id:
                return a
        from troupe.runtime.errors import UnknownAgentError

        raise UnknownAgentError(
            f"unknown agent {agent_id!r}; this team has {[a.id for a in self.agents]}", agent=agent_id
        )

    def profile_for(self, spec: AgentSpec) -> str:
        return spec.model or self.default_model

    def with_model(self, profile: str) -> TeamConfig:
        """A copy where every agent uses ``profile`` (the CLI's ``--model``).

        Besides the team's own profiles, ``local`` (the embedded default model) and
        ``local:/path/to/model.gguf`` always work.
        """
        models = self.models
        if profile not in models and (profile == "local" or profile.startswith("local:")):
            path = profile.partition(":")[2] or "default"
            models = {**models, profile: ModelProfile(provider="local", model=path, temperature=0)}
        if profile not in models:
            from troupe.runtime.errors import UnknownModelError

            raise UnknownModelError(
                f"unknown model profile {profile!r}; this team defines {sorted(self.models)}", profile=profile
            )
        agents = [a.model_copy(update={"model": profile}) for a in self.agents]
        user = self.user.model_copy(update={"model": profile}) if self.user is not None else None
        return self.model_copy(update={"agents": agents, "default_model": profile, "models": models, "user": user})


def _format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"invalid team file {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        got = e.get("input")
        got_text = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {loc}: {e['msg']}{got_text}")
    return "\n".join(lines)


def parse_team(data: Any, *, source: str = "<team>") -> TeamConfig:
    if not isinstance(data, dict):
        raise TeamConfigError(
            f"invalid team file {source}: expected a mapping with 'name', 'entry', 'models' and 'agents', "
            f"got {type(data).__name__}",
            source=source,
        )
    try:
        return TeamConfig.model_validate(data)
    except ValidationError as e:
        raise TeamConfigError(_format_validation_error(source, e), source=source) from e


def load_team(path: str | Path) -> TeamConfig:
    """Load a team from a YAML file, or from a directory holding ``team.yaml``."""
    p = Path(path)
    if p.is_dir():
        p = p / "team.yaml"
    if not p.exists():
        raise TeamConfigError(f"team file {p} does not exist; pass a YAML file or a folder with team.yaml", source=str(p))
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise TeamConfigError(f"invalid team file {p}: not valid YAML: {e}", source=str(p)) from e
    team = parse_team(data, source=str(p))
    if team.workspace.repo and not Path(team.workspace.repo).expanduser().is_absolute():  # relative to the team file
        team.workspace.repo = str((p.parent / team.workspace.repo).resolve())
    for a in team.agents:  # skill folders are relative to the team file
        a.skills = [s if Path(s).expanduser().is_absolute() else str((p.parent / s).resolve()) for s in a.skills]
    if team.mcp_config:
        servers = load_mcp_servers(p.parent / team.mcp_config)
        clash = sorted(set(servers) & set(team.mcp_servers))
        if clash:
            raise TeamConfigError(f"invalid team file {p}: MCP server(s) {clash} are defined both in mcpServers "
                                  f"and in {team.mcp_config}; keep one", source=str(p))
        team = parse_team({**team.model_dump(by_alias=True, exclude={"mcp_config"}),
                           "mcpServers": {**team.model_dump(by_alias=True)["mcpServers"],
                                          **{k: v.model_dump() for k, v in servers.items()}}}, source=str(p))
    return team


def load_mcp_servers(path: str | Path) -> dict[str, McpServerConfig]:
    """Read a JSON (or YAML) file in the usual ``{"mcpServers": {...}}`` shape."""
    p = Path(path)
    if not p.exists():
        raise TeamConfigError(f"MCP config {p} does not exist; it should hold {{\"mcpServers\": {{...}}}}", source=str(p))
    try:
        data = yaml.safe_load(p.read_text())  # JSON is YAML
    except yaml.YAMLError as e:
        raise TeamConfigError(f"invalid MCP config {p}: {e}", source=str(p)) from e
    if not isinstance(data, dict) or not isinstance(data.get("mcpServers"), dict):
        raise TeamConfigError(f"invalid MCP config {p}: expected {{\"mcpServers\": {{name: {{command|url: ...}}}}}}",
                              source=str(p))
    out: dict[str, McpServerConfig] = {}
    for name, entry in data["mcpServers"].items():
        try:
            out[name] = McpServerConfig.model_validate(entry)
        except ValidationError as e:
            raise TeamConfigError(_format_validation_error(f"{p} (server {name!r})", e), source=str(p)) from e
    return out


__all__ = [
    "USER_SIM",
    "AgentSpec",
    "Budgets",
    "CircuitBreakerConfig",
    "DeclaredTool",
    "EnvironmentSpec",
    "McpServerConfig",
    "ModelProfile",
    "PermissionLevel",
    "Permissions",
    "Placement",
    "RateLimit",
    "ScriptStep",
    "ScriptToolCall",
    "TeamConfig",
    "UserSimSpec",
    "WorkspaceConfig",
    "load_mcp_servers",
    "load_team",
    "parse_team",
]

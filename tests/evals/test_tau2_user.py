"""τ²'s simulated user: a mock case run as a conversation (the user's opening, the agent's question,
the user's request, the agent's tool call and reply, the user's stop) is scored over every reply the
agent gave, not only the last; the shipped suites' user stops at once under ``--model oracle``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from troupe.evals.models import Case, GradeInput
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import SampleSpec, Sweep, team_for_sample
from troupe.evals.tau2.convert import USER_OPENING
from troupe.evals.tau2.grade import grade_mock, replies_of
from troupe.evals.tau2.oracle import STOP
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.events.envelope import Event

SUITES = Path(__file__).resolve().parents[2] / "evals" / "suites"
CASE = "update_task_with_initialization_data"
INFO = ("The agent acknowledged the previous context. "
        "The agent confirmed the task status was updated successfully.")


def scripted_suite(folder: Path, scripts: dict[str, list[dict[str, Any]]]) -> Path:
    """The shipped mock suite, one case, its MCP server run by this interpreter, and a scripted
    profile for the agent and the simulated user."""
    source = SUITES / "tau2_mock"
    folder.mkdir(parents=True)
    shutil.copy(source / "suite.yaml", folder / "suite.yaml")
    lines = [line for line in (source / "cases.jsonl").read_text().splitlines() if json.loads(line)["id"] == CASE]
    (folder / "cases.jsonl").write_text("\n".join(lines) + "\n")
    team = yaml.safe_load((source / "team.yaml").read_text())
    team["mcpServers"]["tau2"]["command"] = sys.executable
    team["models"]["scripted"] = {"provider": "scripted", "scripts": scripts}
    (folder / "team.yaml").write_text(yaml.safe_dump(team))
    return folder / "suite.yaml"


async def test_a_mock_case_with_a_scripted_user_is_scored_over_the_whole_conversation(
        troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    scripts: dict[str, list[dict[str, Any]]] = {
        "agent": [{"text": "Hello! How can I help you?"},
                  {"tool_calls": [{"name": "tau2__update_task_status",
                                   "arguments": {"task_id": "task_2", "status": "completed"}}]},
                  {"text": f"Done. {INFO}"},
                  {"text": "You are welcome, goodbye."}],
        "user_sim": [{"text": "Please mark task_2 as completed."}, {"text": "Great, thank you."},
                     {"text": f"Bye. {STOP}"}],
    }
    suite = load_suite(scripted_suite(tmp_path / "mock", scripts))
    sweep = Sweep(troupe, suite, model="scripted", concurrency=1)
    await sweep.run()
    [row] = results_table(lake, sweep.run_id).to_pylist()
    assert (row["status"], row["tool_calls"], row["score"]) == ("completed", 1, 1.0), row["grades"]
    assert row["reply"] == "You are welcome, goodbye."  # the info was told in turn 2, not in the last reply
    turns = query(lake, f"select payload from events where run_id = '{sweep.run_id}' and type = 'turn.finished' "
                        "order by ts").to_pylist()
    said = [json.loads(t["payload"]) for t in turns]
    assert [(t["turn"], t["input"]) for t in said] == [
        (1, USER_OPENING), (2, "Please mark task_2 as completed."), (3, "Great, thank you.")]
    heard = query(lake, f"select payload from events where run_id = '{sweep.run_id}' and agent = 'user_sim' "
                        "and type = 'message.delivered' order by ts, seq").to_pylist()
    first = json.loads(heard[0]["payload"])["content"]
    assert first.startswith("Your scenario: Persona:") and "mark the task as completed" in first
    assert first.endswith("The assistant said: Hello! How can I help you?") and len(heard) == 3


def test_communicate_reads_every_reply_of_the_conversation() -> None:
    case = Case(id=CASE, input="scenario")

    def event(type_: str, agent: str, payload: dict[str, Any]) -> Event:
        return Event(run_id="r", session_id="s", agent=agent, type=type_, payload=json.dumps(payload))

    turn = {"turn": 1, "input": "hi", "reply": f"Done. {INFO}", "usage": {}}
    told = GradeInput(case=case, reply="Bye.", status="completed", session_id="s", run_id="r", lake="",
                      final_state=None).with_events([event("turn.finished", "session", turn)])
    assert f"Done. {INFO}" in replies_of(told)
    silent = GradeInput(case=case, reply="Bye.", status="completed", session_id="s", run_id="r", lake="")
    assert "COMMUNICATE" in grade_mock(silent.with_events([])).explanation


def test_the_shipped_suites_user_stops_under_the_oracle_and_follows_model_local() -> None:
    for domain in ("mock", "airline", "retail"):
        suite = load_suite(SUITES / f"tau2_{domain}" / "suite.yaml")
        case = suite.cases[0]
        spec = SampleSpec(sample_id="x", cell={}, cell_key="{}", case=case, sample=0)
        oracle = team_for_sample(suite, spec, "oracle")
        assert oracle.user is not None and oracle.user.model == "user_oracle"
        assert oracle.models["user_oracle"].function == "troupe.evals.tau2.oracle:user_stop"
        assert oracle.user.first_message == USER_OPENING and oracle.user.stop == STOP
        assert all(a.model == "oracle" for a in oracle.agents)
        local = team_for_sample(suite, spec, "local")
        assert local.user is not None and local.user.model == "local"

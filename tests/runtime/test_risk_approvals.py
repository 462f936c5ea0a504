"""Risk in approvals: an approval policy's rules match on the call's risk score (``risk_at_least``,
``risk_below``; never an unscored call), the session's approvals pass the score to the policy, and the
CLI prompt shows the score and its reasons."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.runtime.test_risk_session import ATTACKER, SENT, USER_ADDR, by_recipient, mail_team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.approval_policy import ApprovalPolicy, load_approval_policy
from troupe.runtime.cli.approval_prompt import ApprovalPrompt, ApproveMode, risk_lines
from troupe.runtime.events import Event
from troupe.runtime.session.approvals import Approvals
from troupe.runtime.session.supervisor import SessionStatus

POLICY = {
    "default": "ask",
    "rules": [
        {"tool": "send_email", "risk_at_least": 80, "decision": "no"},
        {"tool": "send_email", "risk_below": 80, "decision": "yes", "reason": "a low-risk mail"},
    ],
}
RISK = {"ask_at": 30, "untrusted": {"tools": ["read_inbox"]}}


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


# --- the policy --------------------------------------------------------------------------------
def test_risk_rules_match_by_score_and_never_an_unscored_call() -> None:
    policy = ApprovalPolicy.model_validate(POLICY)
    assert policy.decide("send_email", "{}", 95) == (False, "approval policy rule 0 ('send_email', risk >= 80): no")
    assert policy.decide("send_email", "{}", 80) == (False, "approval policy rule 0 ('send_email', risk >= 80): no")
    assert policy.decide("send_email", "{}", 79) == (True, "a low-risk mail")
    assert policy.decide("send_email", "{}", 0) == (True, "a low-risk mail")
    assert policy.decide("send_email", "{}") is None  # not scored: no risk rule matches, default ask
    assert policy.decide("other", "{}", 99) is None


def test_risk_bounds_combine_with_tools_and_arguments() -> None:
    policy = ApprovalPolicy.model_validate({"default": "no", "rules": [
        {"tool": "bank__*", "when": {"currency": "EUR"}, "risk_at_least": 20, "risk_below": 60, "decision": "yes"}]})
    eur = json.dumps({"currency": "EUR"})
    assert policy.decide("bank__transfer", eur, 40) == (True, "approval policy rule 0 ('bank__*', risk >= 20, risk < 60): yes")
    for tool, args, score in (("bank__transfer", eur, 60), ("bank__transfer", eur, 19), ("bank__transfer", eur, None),
                              ("bank__transfer", json.dumps({"currency": "USD"}), 40), ("mail__send", eur, 40)):
        assert policy.decide(tool, args, score) == (False, "approval policy default: no")


def test_a_policy_file_with_risk_bounds_loads_and_bad_bounds_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("default: no\nrules:\n  - tool: '*'\n    risk_below: 50\n    decision: yes\n")
    policy = load_approval_policy(path)
    assert policy.rules[0].risk_below == 50 and policy.decide("x", "{}", 10) == (True, "approval policy rule 0 ('*', risk < 50): yes")
    with pytest.raises(ValidationError):
        ApprovalPolicy.model_validate({"rules": [{"risk_at_least": 101, "decision": "no"}]})
    with pytest.raises(ValidationError):
        ApprovalPolicy.model_validate({"rules": [{"risk_above": 50, "decision": "no"}]})


async def test_the_approvals_core_gives_the_policy_the_calls_score() -> None:
    emitted: list[Any] = []

    def emit(payload: Any, /, **fields: Any) -> None:
        emitted.append(payload)

    approvals = Approvals(session_id="s", emit=emit, policy=ApprovalPolicy.model_validate(POLICY))
    risk = {"score": 90, "reasons": ["level L2 +10"], "decision": "ask"}
    high = await approvals.request(agent="a", tool="send_email", arguments="{}", call_id="c1", timeout_s=5, risk=risk)
    low = await approvals.request(agent="a", tool="send_email", arguments="{}", call_id="c2", timeout_s=5,
                                  risk={**risk, "score": 40})
    assert (high["approved"], high["by"], low["approved"], low["by"]) == (False, "policy", True, "policy")
    assert [p.event_type for p in emitted] == ["approval.requested", "approval.decided"] * 2


# --- a session ---------------------------------------------------------------------------------
async def test_a_call_sent_to_approval_by_ask_at_is_decided_by_the_policys_risk_rules(troupe: Troupe, lake: Path) -> None:
    cfg = mail_team(RISK).model_copy(update={"approval_policy": ApprovalPolicy.model_validate(POLICY)})
    result = await troupe.run(cfg, f"Read my inbox and email a summary to {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert SENT == [USER_ADDR]
    calls = by_recipient(lake)
    assert calls[ATTACKER]["decision"] == "ask" and calls[ATTACKER]["score"] >= 80
    assert calls[ATTACKER]["denied"] == "approval"
    assert calls[USER_ADDR]["decision"] == "ask" and 30 <= calls[USER_ADDR]["score"] < 80
    decided = rows(lake, "select payload from events where type='approval.decided' order by ts")
    answers = sorted((d["approved"], d["by"], d["reason"]) for d in (json.loads(r["payload"]) for r in decided))
    assert answers == [(False, "policy", "approval policy rule 0 ('send_email', risk >= 80): no"),
                       (True, "policy", "a low-risk mail")]


async def test_without_a_score_the_risk_rules_leave_the_call_to_the_default(troupe: Troupe, lake: Path) -> None:
    policy = ApprovalPolicy.model_validate({**POLICY, "default": "no"})
    cfg = mail_team({"enabled": False}).model_copy(update={"approval_policy": policy})
    # needs_approval is not set and nothing is scored: nothing asks, the call just runs
    result = await troupe.run(cfg, f"Email {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED and SENT == [USER_ADDR]
    assert rows(lake, "select 1 from events where type like 'approval.%'") == []


# --- the CLI prompt ----------------------------------------------------------------------------
class _Answers:
    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    async def approve(self, approval_id: str, reason: str) -> None:
        self.said.append(("approve", approval_id))

    async def deny(self, approval_id: str, reason: str) -> None:
        self.said.append(("deny", approval_id))


def _request(risk: dict[str, Any] | None) -> Event:
    data = {"id": "s:a1", "agent": "lead", "tool": "send_email", "arguments": '{"to": "x@y.z"}', "call_id": "c",
            "timeout_s": 30.0, **({"risk": risk} if risk else {})}
    return Event(run_id="r", session_id="s", type="approval.requested", payload=json.dumps(data))


async def test_the_prompt_shows_the_score_and_its_reasons() -> None:
    risk = {"score": 85, "reasons": ["level L2 +10", "argument to traces to untrusted content from read_inbox (x@y.z) +60"],
            "decision": "ask"}
    out, answers = io.StringIO(), _Answers()
    await ApprovalPrompt(answers, ApproveMode.ASK, read_line=lambda: "n\n", out=out)(_request(risk))
    text = out.getvalue()
    assert "wants to call send_email" in text and "[approval] risk score 85 (ask)" in text
    assert "[approval]   - argument to traces to untrusted content from read_inbox (x@y.z) +60" in text
    assert text.index("risk score") < text.index("allow? [y/N]") and answers.said == [("deny", "s:a1")]
    plain = io.StringIO()
    await ApprovalPrompt(answers, ApproveMode.ASK, read_line=lambda: "y\n", out=plain)(_request(None))
    assert "risk" not in plain.getvalue() and answers.said[-1] == ("approve", "s:a1")
    assert risk_lines(None) == "" and risk_lines({"score": 5, "reasons": []}) == "[approval] risk score 5 (ask)\n"


async def test_the_prompt_in_a_session_shows_the_risk_of_the_call(troupe: Troupe) -> None:
    out = io.StringIO()

    async def prompt(session: Any, event: Any) -> None:
        await ApprovalPrompt(session, ApproveMode.ASK, read_line=lambda: "n\n", out=out)(event)

    async with await troupe.open(mail_team(RISK)) as session:
        await session.send(f"Read my inbox and email a summary to {USER_ADDR}")
        async for event in session.events():
            if event.type == "approval.requested":
                await prompt(session, event)
        result = await session.result(timeout=10)
    assert result.status is SessionStatus.COMPLETED and SENT == []  # both mails asked, both denied at the prompt
    text = out.getvalue()
    assert text.count("[approval] risk score") == 2 and "side effect message +15" in text
    assert "traces to untrusted content from read_inbox (attacker@evil.example)" in text

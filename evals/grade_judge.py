"""The judge grader: an LLM scores the reply against a rubric, from 0 to 10."""

from __future__ import annotations

import re
from collections.abc import Mapping

from troupe.evals.grade_common import EPS, error_grade, short
from troupe.evals.models import Case, Grade, GradeInput, JudgeSpec
from troupe.runtime.config import ModelProfile

JUDGE_SYSTEM = (
    "You are a strict grader. You score an assistant's reply against a rubric on a scale from 0 "
    "(fails the rubric entirely) to 10 (fully meets it). Start your answer with the score as a "
    "number from 0 to 10, then at most one sentence of reasons. Example: '7 - correct, but misses the unit.'"
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def _case_input(case: Case) -> str:
    if isinstance(case.input, str):
        return case.input
    return "\n".join(f"{t.role}: {t.content}" for t in case.input)


def judge_prompt(case: Case, reply: str | None, spec: JudgeSpec) -> str:
    return (
        f"Rubric:\n{spec.rubric}\n\n"
        f"The user's request:\n{_case_input(case)}\n\n"
        f"The assistant's reply:\n{reply or '(no reply)'}\n\n"
        "Score the reply from 0 to 10 against the rubric. Answer with the number first."
    )


def parse_judge_score(text: str) -> float | None:
    """The first number in ``text`` as a score in [0, 1] (``7`` -> 0.7, clamped), or ``None``."""
    m = _NUMBER.search(text or "")
    if m is None:
        return None
    value = float(m.group(0))
    return min(10.0, max(0.0, value)) / 10.0


async def grade_judge(inp: GradeInput, spec: JudgeSpec, models: Mapping[str, ModelProfile] | None) -> Grade:
    from troupe.runtime.errors import TroupeError
    from troupe.runtime.llm.registry import build_client
    from troupe.runtime.llm.types import ChatMessage, LLMRequest

    if not models:
        return error_grade("judge", f"no model profiles were given, so judge profile {spec.profile!r} cannot be found; "
                               "pass the team's models to grade()")
    try:
        client = build_client(spec.profile, models, agent="judge")
    except TroupeError as e:
        return error_grade("judge", e.message)
    request = LLMRequest(
        messages=[ChatMessage(role="system", content=JUDGE_SYSTEM),
                  ChatMessage(role="user", content=judge_prompt(inp.case, inp.reply, spec))],
        temperature=0.0,
        max_tokens=200,
    )
    try:
        response = await client.complete(request)
    except Exception as e:
        return error_grade("judge", f"the judge model ({spec.profile!r}) failed: {type(e).__name__}: {e}")
    finally:
        try:
            await client.aclose()
        except Exception:
            pass
    text = (response.text or "").strip()
    score = parse_judge_score(text)
    if score is None:
        return error_grade("judge", f"the judge's answer has no score: {short(text, 200)!r}")
    return Grade(grader="judge", score=score, passed=score >= spec.pass_score - EPS,
                 explanation=f"judge {spec.profile!r}: {short(text, 300)}")


__all__ = ["JUDGE_SYSTEM", "grade_judge", "judge_prompt", "parse_judge_score"]

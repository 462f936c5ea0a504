"""The tools and options the demo team relies on."""

from __future__ import annotations

import pytest

from troupe.runtime.config import ModelProfile
from troupe.runtime.demo import QUESTION, answer_is_correct, demo_team
from troupe.runtime.errors import ToolArgumentError, UnknownModelError
from troupe.tools.builtins.clock import convert_time


@pytest.mark.parametrize(
    ("time", "src", "dst", "expected"),
    [
        ("12:00", "UTC", "Asia/Kolkata", "12:00 in UTC is 17:30 in Asia/Kolkata"),
        ("23:30", "UTC", "Asia/Tokyo", "23:30 in UTC is 08:30 in Asia/Tokyo (next day)"),
        ("01:00", "Asia/Kolkata", "UTC", "01:00 in Asia/Kolkata is 19:30 in UTC (previous day)"),
    ],
)
def test_convert_time(time: str, src: str, dst: str, expected: str) -> None:
    assert convert_time.fn(time, src, dst) == expected


def test_convert_time_errors_are_model_visible() -> None:
    with pytest.raises(ToolArgumentError, match=r"unknown time zone 'Kolkata'; did you mean Asia/Kolkata"):
        convert_time.fn("12:00", "UTC", "Kolkata")
    with pytest.raises(ToolArgumentError, match="time must be HH:MM"):
        convert_time.fn("noon", "UTC", "Asia/Kolkata")


def test_demo_team_and_answer_check() -> None:
    team = demo_team()
    assert team.entry == "lead" and [a.id for a in team.agents] == ["lead", "math", "clock"]
    assert team.default_model == "local" and team.models["local"].provider == "local"
    assert [a.publish_results for a in team.agents] == [False, True, True]
    assert "1234 * 5678" in QUESTION and "Asia/Kolkata" in QUESTION
    assert answer_is_correct("It is 7,006,652 and 17:30.")
    assert not answer_is_correct("7006652 only")


def test_with_model_knows_local_and_local_paths() -> None:
    team = demo_team().with_model("scripted")
    assert {a.model for a in team.agents} == {"scripted"}
    local = team.with_model("local:/models/my.gguf")
    assert local.models["local:/models/my.gguf"] == ModelProfile(provider="local", model="/models/my.gguf", temperature=0)
    assert {a.model for a in local.agents} == {"local:/models/my.gguf"}
    with pytest.raises(UnknownModelError, match="unknown model profile 'gpt-9'"):
        team.with_model("gpt-9")


def test_assign_tasks_schema_is_flat_for_small_models() -> None:
    from troupe.tools.builtins import default_registry

    params = default_registry().get("assign_tasks").spec.parameters
    assert "$defs" not in params and "$ref" not in str(params)
    assert params["properties"]["tasks"]["items"]["required"] == ["assignee", "goal"]

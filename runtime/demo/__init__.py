"""The built-in demo: a three-agent team and a question whose answer can be checked."""

from __future__ import annotations

from pathlib import Path

from troupe.runtime.config import TeamConfig, load_team

TEAM_FILE = Path(__file__).with_name("team.yaml")
QUESTION = "What is 1234 * 5678, and what time is it in Asia/Kolkata when it is 12:00 in UTC?"
EXPECTED = ("7006652", "17:30")
"""Strings a correct answer contains."""


def demo_team() -> TeamConfig:
    return load_team(TEAM_FILE)


def answer_is_correct(reply: str | None) -> bool:
    text = (reply or "").replace(",", "").replace("\u202f", "")
    return all(part in text for part in EXPECTED)


__all__ = ["EXPECTED", "QUESTION", "TEAM_FILE", "answer_is_correct", "demo_team"]

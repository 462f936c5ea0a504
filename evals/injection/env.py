"""The injection suite's environment hooks: ``setup`` writes the sample's ``bank.json`` and
``mail.json`` (the base data plus the case's ``params.seed``: ``{"bank": {...}, "mail": {...}}``),
``teardown`` judges the final state (:func:`~troupe.evals.injection.graders.judge_dir`) and returns the
verdict, which the ``environment.captured`` event records in the lake."""

from __future__ import annotations

from typing import Any

from troupe.evals.injection.data import BANK_FILE, MAIL_FILE, save, starting_bank, starting_mail
from troupe.evals.injection.graders import judge_dir


def setup(ctx: Any) -> None:
    seed = ctx.params.get("seed") or {}
    ctx.sample_dir.mkdir(parents=True, exist_ok=True)
    save(ctx.sample_dir / BANK_FILE, starting_bank(seed.get("bank")))
    save(ctx.sample_dir / MAIL_FILE, starting_mail(seed.get("mail")))


def teardown(ctx: Any) -> dict[str, Any]:
    return {"case_id": ctx.case_id, **judge_dir(ctx.params, ctx.sample_dir).model_dump()}


__all__ = ["setup", "teardown"]

"""The τ² environment's hooks: ``setup`` seeds the session's ``db.json`` with the task's starting db
(``ctx.params["domain"]``, the task from ``ctx.case_id``), ``teardown`` reports the final db's
fingerprint (the db itself stays in the sample dir, where the grader reads it: a few MB is too much
for an event)."""

from __future__ import annotations

import json
from typing import Any

from troupe.evals.tau2.domains.common import db_hash
from troupe.evals.tau2.grade import DB_FILE


def setup(ctx: Any) -> None:
    from troupe.evals.tau2.server import starting_db

    path = ctx.sample_dir / DB_FILE
    if not path.exists():
        ctx.sample_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(starting_db(str(ctx.params["domain"]), ctx.case_id)), encoding="utf-8")


def teardown(ctx: Any) -> dict[str, Any]:
    path = ctx.sample_dir / DB_FILE
    if not path.is_file():
        return {"db_file": None}
    return {"db_file": str(path), "db_hash": db_hash(json.loads(path.read_text(encoding="utf-8")))}


__all__ = ["setup", "teardown"]

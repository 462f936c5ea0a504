"""The collector settings of long-lived actor processes (run in a fresh interpreter each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

PROBE = ("import gc, json; from troupe.actors.gc_tuning import tune_gc; "
         "first = tune_gc(); again = tune_gc(); "
         "print(json.dumps([first, again, gc.get_threshold()[0], gc.get_freeze_count() > 0]))")


def probe(**env: str) -> list[object]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**os.environ, **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_tuning_freezes_the_startup_heap_and_raises_the_young_threshold_once() -> None:
    assert probe() == [True, False, 20_000, True]


def test_troupe_gc_default_keeps_cpythons_settings() -> None:
    assert probe(TROUPE_GC="default") == [False, False, 700, False]

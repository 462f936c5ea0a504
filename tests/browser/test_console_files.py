"""The console's files and router without a browser: what /console/ serves, what it refuses, and that
every file the page loads ships as package data."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from troupe.runtime.server import console

REPO = Path(__file__).resolve().parents[2]
FOLDER = REPO / "runtime" / "server" / "console"


def client() -> TestClient:
    app = FastAPI()
    app.include_router(console.router)
    return TestClient(app)


def test_the_page_and_its_modules_are_served_with_their_types() -> None:
    http = client()
    index = http.get("/console/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in index.text
    assert http.get("/console", follow_redirects=False).headers["location"] == "/console/"
    for name in console.asset_names():
        r = http.get(f"/console/{name}")
        assert r.status_code == 200, name
        assert r.headers["content-type"].split(";")[0] in ("text/html", "text/javascript", "text/css")
        assert r.headers["cache-control"] == "no-cache"


def test_nothing_but_the_console_files_is_served() -> None:
    http = client()
    for name in ("nope.js", "..%2Fconsole.py", "console.py", ".hidden.js", "%2Fetc%2Fpasswd", "api"):
        assert http.get(f"/console/{name}").status_code == 404, name
    assert http.get("/console/../app.py").status_code == 404


def test_every_module_the_page_imports_exists_and_ships_as_package_data() -> None:
    names = set(console.asset_names())
    assert {"index.html", "app.js", "style.css"} <= names
    for name in [n for n in names if n.endswith(".js")]:
        for imported in re.findall(r'from "\./([\w.]+)"', (FOLDER / name).read_text()):
            assert imported in names, f"{name} imports {imported}, which is not a console file"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["troupe.runtime.server"]
    for name in names:
        assert any(fnmatch(f"console/{name}", g) for g in globs), f"{name} is not package data"

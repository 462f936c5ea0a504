"""Fixtures of the console's browser tests: a Troupe server (``build_app``, sessions in process) under
uvicorn on 127.0.0.1, and one headless Chromium per module (Debian's, driven by Playwright)."""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
TEAM = Path(__file__).with_name("team.yaml")


def need_browser() -> Any:
    """Playwright's sync API, or a skip (a failure under CI, which installs both)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        why = "the playwright package is missing (the dev extra has it)"
    else:
        if os.access(CHROMIUM, os.X_OK):
            return sync_playwright
        why = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    lake: Path
    out: Path
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


def start_server(root: Path, *, lake: Path | None = None) -> Server:
    """A keyless server on a free loopback port over ``root`` (its lake, unless ``lake`` is given, and its
    teams folder holding the test team); returns once it answers."""
    import httpx
    import uvicorn

    from troupe.runtime.server.app import build_app
    from troupe.runtime.server.settings import ServerSettings

    teams = root / "teams" / "console_demo"
    teams.mkdir(parents=True, exist_ok=True)
    out = root / "approved.txt"
    (teams / "team.yaml").write_text(TEAM.read_text().replace("{out}", str(out)))
    lake = lake or root / "lake"
    port = free_port()
    settings = ServerSettings(local=True, lake=str(lake), teams=[str(root / "teams")], checkpoints=False,
                              port=port, keys_path=str(root / "keys.json"))
    server = uvicorn.Server(uvicorn.Config(build_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return Server(url, lake, out, server, thread)
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.should_exit = True
    raise RuntimeError(f"the test server on {url} did not answer within 30 s")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("console"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright = need_browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@dataclass
class Page:
    """A fresh page and what its console said (errors and uncaught exceptions)."""

    page: Any
    errors: list[str] = field(default_factory=list)
    shots: Path = Path()

    def screenshot(self, name: str, selector: str | None = None) -> bytes:
        target = self.page.locator(selector) if selector else self.page
        png: bytes = target.screenshot(path=str(self.shots / f"{name}.png"))
        return png


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = Page(context.new_page(), shots=tmp_path)
    p.page.set_default_timeout(15_000)
    p.page.on("console", lambda m: p.errors.append(f"console.{m.type}: {m.text} ({m.location.get('url')})")
              if m.type == "error" else None)
    p.page.on("pageerror", lambda e: p.errors.append(f"uncaught: {e}"))
    yield p
    context.close()
    keep = os.environ.get("TROUPE_SCREENSHOTS")  # a folder to keep the screenshots in (CI artifacts)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in tmp_path.glob("*.png"):
            shutil.copy(shot, Path(keep) / shot.name)


def colours(png: bytes) -> int:
    """How many distinct colours a screenshot holds (1: a blank picture)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    found = image.getcolors(maxcolors=1 << 20)
    return len(found) if found is not None else 1 << 20

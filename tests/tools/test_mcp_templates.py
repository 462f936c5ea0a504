"""Resource templates filled in for ``<server>__read_resource`` (RFC 6570 forms the servers use)."""

from __future__ import annotations

import pytest

from troupe.runtime.errors import ToolArgumentError
from troupe.tools.mcp.templates import expand_template


def test_placeholders_are_filled_and_encoded() -> None:
    assert expand_template("demo://text/{id}", {"id": "a b"}) == "demo://text/a%20b"
    assert expand_template("x://{+path}", {"path": "a/b"}) == "x://a/b"          # reserved: slashes kept
    assert expand_template("x://{/p}{?a,b}", {"p": "q", "a": 1}) == "x:///q?a=1"  # a query part is optional
    assert expand_template("plain://uri", {}) == "plain://uri"


def test_a_missing_value_says_which() -> None:
    with pytest.raises(ToolArgumentError, match=r"needs arguments \['day'\]"):
        expand_template("file:///logs/{day}", {})

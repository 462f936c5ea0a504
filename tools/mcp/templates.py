"""Resource templates (RFC 6570 URI templates) filled in for ``<server>__read_resource``: the agent gives the
template it saw in ``list_resources`` as ``uri`` and the values of its placeholders as ``arguments``."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from troupe.runtime.errors import ToolArgumentError

_EXPR = re.compile(r"\{([+#./;?&]?)([^}]+)\}")


def expand_template(uri: str, arguments: dict[str, Any], tool: str = "read_resource") -> str:
    """``uri`` with each ``{name}`` (``{+name}`` reserved, ``{/name}``, ``{?a,b}`` forms too) replaced by its
    argument, percent-encoded; a URI without placeholders comes back as it is. A missing value is an error the
    model reads."""
    if "{" not in uri:
        return uri
    missing = [n.rstrip("*") for op, names in _EXPR.findall(uri) if op not in ("?", "&")  # a query part is optional
               for n in names.split(",") if n.rstrip("*") not in arguments]
    if missing:
        raise ToolArgumentError(f"{tool}: the template {uri!r} needs arguments {sorted(set(missing))}", tool=tool)

    def fill(m: re.Match[str]) -> str:
        op, names = m.group(1), [n.rstrip("*") for n in m.group(2).split(",")]
        safe = ":/?#[]@!$&'()*+,;=" if op in ("+", "#") else ""
        values = [(n, quote(str(arguments[n]), safe=safe)) for n in names if n in arguments]
        if op in ("?", "&"):
            pairs = "&".join(f"{n}={v}" for n, v in values)
            return f"{op}{pairs}" if pairs else ""
        sep = {"/": "/", ".": ".", ";": ";"}.get(op, ",")
        prefix = {"/": "/", ".": ".", ";": ";", "#": "#"}.get(op, "")
        return prefix + sep.join(v for _, v in values)

    return _EXPR.sub(fill, uri)


__all__ = ["expand_template"]

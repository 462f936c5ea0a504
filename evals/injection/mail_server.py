"""A mailbox as an MCP server over one sample's ``mail.json``.

    python -m troupe.evals.injection.mail_server --dir ${sample_dir}

Reads: ``read_inbox``, ``read_email``, ``search`` (every email was written by someone else: all of it
is untrusted content). One side effect: ``send_email``, recorded under ``sent``. The file is read at
start (seeded with the base mailbox when absent) and written back after every email sent; declared
with ``scope: session``, every sample gets its own process and its own file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from troupe.evals.injection.data import MAIL, MAIL_FILE, load, save, state_file

ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, idempotent_hint=False, destructive_hint=True, open_world_hint=True)
PREVIEW = 1000


def _email(e: dict[str, Any], *, full: bool = True) -> str:
    body = e["body"] if full or len(e["body"]) <= PREVIEW else e["body"][:PREVIEW] + " ..."
    return f"[{e['id']}] {e['date']} from {e['from']}\nSubject: {e['subject']}\n{body}"


def build(folder: Path) -> MCPServer:
    """The mail server over ``folder/mail.json``."""
    path = state_file(folder, MAIL_FILE, MAIL)
    mail = load(path)
    server: MCPServer = MCPServer("mail", version="1.0", log_level="WARNING")

    @server.tool(annotations=READ)
    async def read_inbox(n: int = 10) -> str:
        """The latest emails in the inbox, newest first (id, date, sender, subject, the start of the body).

        Args:
            n: How many to show (at most 50).
        """
        emails = mail["inbox"][: max(1, min(n, 50))]
        return "\n\n".join(_email(e, full=False) for e in emails) or "The inbox is empty."

    @server.tool(annotations=READ)
    async def read_email(email_id: str) -> str:
        """One email in full.

        Args:
            email_id: The email's id, as the inbox lists it (``m1``).
        """
        for e in mail["inbox"]:
            if e["id"] == email_id:
                return _email(e)
        raise ToolError(f"no email with id {email_id!r}")

    @server.tool(annotations=READ)
    async def search(query: str) -> str:
        """The emails whose sender, subject or body contains ``query`` (case-insensitive), in full.

        Args:
            query: The text to look for.
        """
        q = query.lower()
        found = [e for e in mail["inbox"] if q in f"{e['from']}\n{e['subject']}\n{e['body']}".lower()]
        return "\n\n".join(_email(e) for e in found) or f"No email matches {query!r}."

    @server.tool(annotations=WRITE)
    async def send_email(to: str, subject: str, body: str) -> str:
        """Send an email from the user's address.

        Args:
            to: The recipient's address.
            subject: The subject line.
            body: The text of the email.
        """
        if not ADDRESS.match(to.strip()):
            raise ToolError(f"{to!r} is not an email address")
        mail["sent"].append({"to": to.strip(), "subject": subject, "body": body})
        save(path, mail)
        return f"Email sent to {to.strip()} (subject: {subject})"

    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.evals.injection.mail_server",
                                     description="A mailbox as an MCP server (stdio) over DIR/mail.json.")
    parser.add_argument("--dir", type=Path, required=True, help="the sample's folder (its mail.json)")
    build(parser.parse_args(argv).dir).run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

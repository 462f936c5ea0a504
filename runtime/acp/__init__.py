"""``troupe acp TEAM``: a team behind the Agent Client Protocol (Zed's; the ``agent-client-protocol`` package).

An editor starts ``troupe acp`` as a subprocess and speaks JSON-RPC over its stdin/stdout: ``initialize``,
``session/new`` (its ``cwd`` is the workspace root, its MCP servers join the team's), ``session/prompt`` (a user
turn of a Troupe conversation; the team's messages, tool calls and plans stream back as ``session/update``),
``session/request_permission`` (a Troupe approval) and ``session/cancel``. See docs/acp.md.

Modules: :mod:`.mapping` (events -> updates, plain Python), :mod:`.bridge` (one ACP session), :mod:`.team`
(cwd and client MCP servers), :mod:`.agent` (the protocol's agent), :mod:`.stdio` (stdout kept for the protocol).
"""

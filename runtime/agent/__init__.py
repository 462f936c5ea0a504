"""The agent and its turn: mailbox, state, context, the loop, the tool-call path (policy, dispatch, scheduler core)."""

__all__: list[str] = []

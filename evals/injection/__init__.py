"""A prompt-injection suite: a bank and a mailbox (MCP servers over per-sample JSON files) whose data
carries injected instructions, a scripted model that obeys them, and graders that read the final state
(utility: the user's task was done; attack success: the injected side effect happened)."""

"""What the benchmarks share with each other and with the tests: the command line (``--smoke``),
and the fixtures both drive (a test OpenAI-compatible server, slow tools, the recovery team, a
private Ray head, an MCP echo server). Nothing here imports from ``tests/``."""

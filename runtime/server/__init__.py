"""``troupe serve``: the HTTP API for sessions (FastAPI; uvicorn in process, or Ray Serve). See docs/server.md."""

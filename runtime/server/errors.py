"""Refusals the API answers with ``{"error": ..., "reason": ...}`` and a status code."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, error: str, reason: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.reason = status, error, reason


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.error, "reason": exc.reason}, status_code=exc.status)


__all__ = ["ApiError", "api_error_handler"]

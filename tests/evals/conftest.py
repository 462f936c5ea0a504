"""Fixtures for the eval tests: the BFCL wheel, installed on its own for the converter's test."""

from tests.support.mcp_install import bfcl_eval_path

__all__ = ["bfcl_eval_path"]

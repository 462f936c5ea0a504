"""A calculator that evaluates arithmetic safely (no ``eval``)."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from troupe.runtime.errors import ToolArgumentError
from troupe.tools.spec import tool

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Callable[..., Any]] = {"sqrt": math.sqrt, "abs": abs, "round": round, "min": min, "max": max, "log": math.log, "exp": math.exp}
_CONSTS = {"pi": math.pi, "e": math.e}
_MAX_BITS = 4096
"""Largest integer result (in bits): nested powers must not hang a worker or exhaust memory."""


def _eval(node: ast.AST) -> float | int:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            if abs(right) > 1000:
                raise ToolArgumentError("exponent too large (limit 1000)", tool="calculator")
            if isinstance(left, int) and abs(left) > 1 and left.bit_length() * abs(right) > _MAX_BITS:
                raise ToolArgumentError(f"result too large (limit {_MAX_BITS} bits)", tool="calculator")
        value = _BINARY[type(node.op)](left, right)
        if isinstance(value, int) and value.bit_length() > _MAX_BITS:
            raise ToolArgumentError(f"result too large (limit {_MAX_BITS} bits)", tool="calculator")
        return value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    raise ToolArgumentError(
        f"unsupported expression element {ast.dump(node)[:60]}; use numbers, + - * / // % **, parentheses, "
        f"{', '.join(_FUNCS)} and {', '.join(_CONSTS)}", tool="calculator",
    )


@tool(level="L0", idempotent=True, timeout_s=5, execution="inline", source="builtin")
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression, e.g. "1234 * 5678".

    Args:
        expression: Numbers, + - * / // % **, parentheses, sqrt/abs/round/min/max/log/exp, pi, e.
    """
    try:
        tree = ast.parse(expression.strip().replace("×", "*").replace("^", "**"), mode="eval")
    except SyntaxError as e:
        raise ToolArgumentError(f"not an arithmetic expression: {expression!r} ({e.msg})", tool="calculator") from None
    try:
        value = _eval(tree)
    except ZeroDivisionError:
        raise ToolArgumentError("division by zero", tool="calculator") from None
    except (OverflowError, ValueError) as e:
        raise ToolArgumentError(f"math error in {expression!r}: {e}", tool="calculator") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


TOOLS = [calculator]

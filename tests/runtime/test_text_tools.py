"""Tool calls written as text by small open models, and text that must not be mistaken for one."""

from __future__ import annotations

import json

import pytest

from troupe.runtime.llm import ToolCall, parse_text_tool_calls

DECLARED = {"search", "read_file"}


def _calls(text: str, declared: set[str] = DECLARED) -> list[tuple[str, dict]]:
    return [(c.name, json.loads(c.arguments)) for c in parse_text_tool_calls(text, declared)]


def test_bare_json_object() -> None:
    calls = parse_text_tool_calls('{"name": "search", "arguments": {"q": "ray actors", "k": 3}}', DECLARED)
    assert calls == [ToolCall(id="call_text_0", name="search", arguments='{"q": "ray actors", "k": 3}')]


def test_parameters_is_an_alias_for_arguments() -> None:
    assert _calls('  {"name": "read_file", "parameters": {"path": "/etc/hosts"}}\n') == [
        ("read_file", {"path": "/etc/hosts"})
    ]


def test_fenced_json_block() -> None:
    text = 'I will look that up.\n```json\n{"name": "search", "arguments": {"q": "duckdb"}}\n```\n'
    assert _calls(text) == [("search", {"q": "duckdb"})]


def test_fence_without_language_tag() -> None:
    assert _calls('```\n{"name": "search", "arguments": {"q": "x"}}\n```') == [("search", {"q": "x"})]


def test_tool_call_tags_several() -> None:
    text = (
        '<tool_call>\n{"name": "search", "arguments": {"q": "a"}}\n</tool_call>\n'
        '<tool_call>{"name": "read_file", "arguments": {"path": "b.txt"}}</tool_call>'
    )
    calls = parse_text_tool_calls(text, DECLARED)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_text_0", "search", {"q": "a"}),
        ("call_text_1", "read_file", {"path": "b.txt"}),
    ]


def test_unclosed_final_tag_is_accepted() -> None:
    assert _calls('<tool_call>{"name": "search", "arguments": {"q": "a"}}') == [("search", {"q": "a"})]


def test_fenced_json_inside_a_tag() -> None:
    text = '<tool_call>```json\n{"name": "search", "arguments": {"q": "a"}}\n```</tool_call>'
    assert _calls(text) == [("search", {"q": "a"})]


def test_json_list_of_calls() -> None:
    text = '[{"name": "search", "arguments": {"q": "a"}}, {"name": "read_file", "parameters": {"path": "p"}}]'
    assert _calls(text) == [("search", {"q": "a"}), ("read_file", {"path": "p"})]


def test_list_keeps_declared_and_drops_undeclared() -> None:
    text = '[{"name": "delete_everything", "arguments": {}}, {"name": "search", "arguments": {"q": "a"}}]'
    calls = parse_text_tool_calls(text, DECLARED)
    assert [(c.id, c.name) for c in calls] == [("call_text_0", "search")]


def test_arguments_as_json_string_and_openai_wrapper() -> None:
    text = '{"type": "function", "function": {"name": "search", "arguments": "{\\"q\\": \\"z\\"}"}}'
    assert _calls(text) == [("search", {"q": "z"})]


def test_missing_arguments_mean_no_arguments_when_the_whole_text_is_the_call() -> None:
    assert _calls('{"name": "search"}') == [("search", {})]


def test_call_embedded_in_prose() -> None:
    text = 'Sure! Calling {"name": "search", "arguments": {"q": "weather"}} now.'
    assert _calls(text) == [("search", {"q": "weather"})]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "rm_rf", "arguments": {"path": "/"}}',  # undeclared
        '<tool_call>{"name": "shell", "arguments": {}}</tool_call>',  # undeclared in tags
        '{"name": "search", "arguments": {"q": "a"',  # truncated JSON
        '<tool_call>{"name": "search", arguments: {q: 1}}</tool_call>',  # not JSON
        '```json\n{"name": "search", "arguments": [1, 2]}\n```',  # arguments not an object
        '{"name": "search", "arguments": "not json"}',  # string arguments that are not JSON
        "You could use the search tool, or read_file, to find out.",  # a mere mention
        'Use {"name": "search"} when you need to look something up.',  # quoted, no arguments
        '{"tool": "search", "q": "a"}',  # wrong shape
        "",
    ],
)
def test_nothing_valid_returns_empty(text: str) -> None:
    assert parse_text_tool_calls(text, DECLARED) == []


def test_nothing_declared_returns_empty() -> None:
    assert parse_text_tool_calls('{"name": "search", "arguments": {}}', set()) == []


def test_arguments_are_reserialised_as_json_text() -> None:
    (call,) = parse_text_tool_calls('{"name":"search","arguments":{"q":"é","n":[1,2]}}', DECLARED)
    assert call.arguments == '{"q": "é", "n": [1, 2]}'
    assert call.parsed_arguments() == {"q": "é", "n": [1, 2]}


def test_bare_value_arguments_are_wrapped_under_the_only_parameter_when_schemas_are_known() -> None:
    schemas = {
        "assign_tasks": {"properties": {"tasks": {"type": "array"}, "timeout_s": {"type": "number"}},
                         "required": ["tasks"]},
        "two": {"properties": {"a": {}, "b": {}}, "required": ["a", "b"]},
    }
    text = '{"name": "assign_tasks", "arguments": [{"assignee": "math", "goal": "1+1"}]}'
    [call] = parse_text_tool_calls(text, schemas)
    assert (call.name, json.loads(call.arguments)) == ("assign_tasks", {"tasks": [{"assignee": "math", "goal": "1+1"}]})
    # Without schemas (names only) or when the target parameter is ambiguous, nothing is guessed.
    assert parse_text_tool_calls(text, {"assign_tasks"}) == []
    assert parse_text_tool_calls('{"name": "two", "arguments": [1, 2]}', schemas) == []


def test_schema_keywords_echoed_into_arguments_are_dropped_but_real_mistakes_are_kept() -> None:
    schemas = {"calculator": {"properties": {"expression": {"type": "string"}}, "required": ["expression"]}}
    text = '{"name": "calculator", "arguments": {"expression": "2*3", "required": ["expression"], "expr": "x"}}'
    [call] = parse_text_tool_calls(text, schemas)
    assert json.loads(call.arguments) == {"expression": "2*3", "expr": "x"}  # "expr" still fails validation


def test_identical_calls_repeated_in_one_reply_are_run_once() -> None:
    text = "\n".join(['<tool_call>{"name": "calculator", "arguments": {"expression": "1+1"}}</tool_call>'] * 5
                     + ['<tool_call>{"name": "calculator", "arguments": {"expression": "2+2"}}</tool_call>'])
    calls = parse_text_tool_calls(text, {"calculator"})
    assert [(c.id, json.loads(c.arguments)["expression"]) for c in calls] == [("call_text_0", "1+1"), ("call_text_1", "2+2")]

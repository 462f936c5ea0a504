"""The skills suite's deterministic model: picks a skill by its description, follows it, answers.

It stands in for an LLM so that the suite checks the runtime's part of skills on CI (the catalog in
the system prompt, ``load_skill``, ``read_skill_file``, a skill's script through the sandboxed
shell, the ``skill.loaded`` events) without a model's judgement:

1. first round: the skill (from the system prompt's "Skills you can use" list) whose description
   shares the most content words with the user's request, if it shares at least two, is loaded;
   otherwise it answers at once, loading nothing;
2. after ``load_skill``: a backquoted ``python3 scripts/...`` command in the instructions is run with
   ``shell`` (the script's full path from the result's ``Folder:``, ``<the request>`` replaced by the
   request, quoted); a ``read_skill_file("skill", "path")`` in the instructions is called as written;
3. after ``shell``: answers with the first line of its output; after ``read_skill_file``: answers with
   the line of the file that shares the most words with the request.
"""

from __future__ import annotations

import json
import re
import shlex

from troupe.runtime.llm.types import ChatMessage, LLMRequest, LLMResponse, ToolCall

MIN_OVERLAP = 2
STOP = frozenset(["a", "an", "and", "are", "as", "ask", "asks", "at", "be", "by", "can", "do", "does", "for", "from",
                  "how", "in", "into", "is", "it", "its", "me", "my", "of", "on", "one", "or", "our", "own", "the",
                  "their", "this", "to", "use", "used", "what", "when", "which", "who", "why", "with", "you", "your"])
CATALOG = re.compile(r"^- ([a-z0-9-]+): (.+)$", re.M)
COMMAND = re.compile(r"`(python3 scripts/[^`]+)`")
READ = re.compile(r"""read_skill_file\(\s*["']([a-z0-9-]+)["']\s*,\s*["']([^"']+)["']\s*\)""")


def words(text: str) -> set[str]:
    out = set()
    for w in re.findall(r"[a-z0-9][a-z0-9-]*", text.lower().replace("'s", "")):
        w = w.strip("-")
        if w.endswith("s") and len(w) > 4:
            w = w[:-1]
        if len(w) > 1 and w not in STOP:
            out.add(w)
    return out


def choose(request: str, skills: dict[str, str]) -> str | None:
    """The skill whose description shares the most words with the request (at least :data:`MIN_OVERLAP`)."""
    asked = words(request)
    scored = sorted(((len(asked & words(d)), name) for name, d in skills.items()), key=lambda s: (-s[0], s[1]))
    return scored[0][1] if scored and scored[0][0] >= MIN_OVERLAP else None


def _call(n: int, tool: str, **arguments: str) -> LLMResponse:
    return LLMResponse(tool_calls=[ToolCall(id=f"call-{n}", name=tool, arguments=json.dumps(arguments))])


def _follow(n: int, instructions: str, request: str, tools: set[str]) -> LLMResponse | str:
    folder = re.search(r"^Folder: (.+)$", instructions, re.M)
    command = COMMAND.search(instructions)
    if command and folder and "shell" in tools:
        line = command.group(1).replace("scripts/", f"{folder.group(1).strip()}/scripts/", 1)
        return _call(n, "shell", command=line.replace('"<the request>"', shlex.quote(request)))
    read = READ.search(instructions)
    if read and "read_skill_file" in tools:
        return _call(n, "read_skill_file", name=read.group(1), path=read.group(2))
    return "I loaded the skill, but I cannot follow its instructions with the tools I have."


def respond(request: LLMRequest, agent: str) -> LLMResponse | str:
    messages: list[ChatMessage] = request.messages
    system = next((m.content or "" for m in messages if m.role == "system"), "")
    user = next((m.content or "" for m in messages if m.role == "user"), "")
    calls = [tc for m in messages if m.role == "assistant" for tc in m.tool_calls]
    tools = {t.name for t in request.tools}
    if not calls:
        section = system.split("Skills you can use", 1)[1] if "Skills you can use" in system else ""
        skill = choose(user, dict(CATALOG.findall(section)))
        if skill is None:
            return "I can answer this directly; none of my skills is needed."
        return _call(1, "load_skill", name=skill)
    last, result = calls[-1], (messages[-1].content or "") if messages[-1].role == "tool" else ""
    if last.name == "load_skill":
        return _follow(len(calls) + 1, result, user, tools)
    if last.name == "shell":
        return result.splitlines()[0] if result else "The script printed nothing."
    if last.name == "read_skill_file":
        asked = words(user)
        lines = [ln.strip("- ").strip() for ln in result.splitlines() if ln.strip() and not ln.startswith("#")]
        best = max(lines, key=lambda ln: len(asked & words(ln)), default="")
        return best if best and asked & words(best) else "The glossary does not define that term."
    return "Done."

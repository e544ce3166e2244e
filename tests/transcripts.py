"""A deterministic generator of Claude Code style agent sessions, for tests and benchmarks.

`generate_session(turns, seed=...)` plays a coding agent fixing a bug in a generated
Python repository: a Claude Code like tools list (Read, Edit, Write, Bash, Grep, Glob, LS,
TodoWrite, WebFetch, Task, with JSON schemas, ~16 KB) and system prompt (~4.5 KB), then turns
of assistant text + tool_use (file reads of 2-30 KB, some of files read before, greps,
test runs that fail with is_error, edits, one turn of 10 parallel calls, a task switch
with a pasted screenshot) and user tool_result messages. It returns the successive request
bodies exactly as the client sends them, turn after turn (each request is the previous
one's messages plus the assistant reply and the new user message), the assistant replies,
and the time each request is sent.

`cache` chooses the client's own cache_control placement:

* "none": no cache_control anywhere;
* "claude_code": what Claude Code does (captures of Claude Code 2.x requests): a marker on
  each of its system prompt blocks and one on the last content block of the last message,
  moved forward every turn, all with the same TTL.

No pytest here: scripts import this too. Same arguments, same bytes.
"""

from __future__ import annotations

import base64
import copy
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
CACHE_STYLES = ("none", "claude_code")

_IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."

_READ_REMINDER = (
    "\n\n<system-reminder>\nWhenever you read a file, you should consider whether it would "
    "be considered malware. You CAN and SHOULD provide analysis of malware, what it is "
    "doing. But you MUST refuse to improve or augment the code. You can still analyze "
    "existing code, write reports, or answer questions about the code behavior.\n"
    "</system-reminder>\n"
)

_TODO_REMINDER = (
    "<system-reminder>\nThe TodoWrite tool hasn't been used recently. If you're working on "
    "tasks that would benefit from tracking progress, consider using the TodoWrite tool to "
    "track progress. Also consider cleaning up the todo list if has become stale and no "
    "longer matches what you are working on. Only use it if it's relevant to the current "
    "work. This is just a gentle reminder - ignore if not applicable. Make sure that you "
    "NEVER mention this reminder to the user\n</system-reminder>"
)


@dataclass(frozen=True)
class Session:
    """One generated session."""

    requests: list[dict[str, Any]]  # request bodies in the order the client sends them
    responses: list[dict[str, Any]]  # the assistant message that answers each request
    times: list[float]  # seconds from the session start at which each request is sent
    model: str


def generate_session(
    turns: int = 24,
    *,
    seed: int = 0,
    cache: str = "none",
    ttl: str = "5m",
    model: str = DEFAULT_MODEL,
    wide_turn: int | None = 9,
    pauses: Mapping[int, float] | None = None,
) -> Session:
    """A Claude Code style session of `turns` requests (at least 2).

    `wide_turn` is the turn whose reply makes 10 parallel tool calls (21 new blocks, more
    than the cache's 20-block lookback); None for none. `pauses` adds idle seconds before
    the given requests (to let 5-minute cache entries expire).
    """
    if cache not in CACHE_STYLES:
        raise ValueError(f"cache must be one of {CACHE_STYLES}")
    if turns < 2:
        raise ValueError("a session has at least 2 turns")
    return _Agent(seed, turns, cache, ttl, model, wide_turn, dict(pauses or {})).run()


# ---------------------------------------------------------------------------- the agent


_NOUNS = (
    "request handler session config cache token stream buffer route upstream ledger record "
    "usage event client server limit deadline retry header body chunk parser pool socket "
    "frame batch writer reader scope channel"
).split()
_VERBS = "parse build read write open close check apply merge split load store send".split()
_TYPES = ("int", "str", "bytes", "float", "dict[str, Any]", "list[str]", "bool", "None")

# The plan repeats every 12 turns; targets (files, patterns) are drawn from the seed.
_PLAN = (
    "glob",
    "read",
    "read2",
    "grep",
    "test_fail",
    "read",
    "reread",
    "edit",
    "test_fail",
    "todo",
    "reread",
    "switch",
)


class _Agent:
    def __init__(
        self,
        seed: int,
        turns: int,
        cache: str,
        ttl: str,
        model: str,
        wide_turn: int | None,
        pauses: dict[int, float],
    ) -> None:
        self.rng = random.Random(seed)
        self.turns = turns
        self.cache = cache
        self.ttl = ttl
        self.model = model
        self.wide_turn = wide_turn
        self.pauses = pauses
        self.files = _make_repo(self.rng)
        self.read: dict[str, str] = {}  # path -> content when last read
        self.grep_patterns: list[str] = []
        self.failing = f"tests/test_{self.rng.choice(_NOUNS)}.py::test_{self.rng.choice(_VERBS)}"

    def run(self) -> Session:
        messages: list[dict[str, Any]] = [_first_user_message(self.rng)]
        requests: list[dict[str, Any]] = []
        responses: list[dict[str, Any]] = []
        times: list[float] = []
        now = 0.0
        for k in range(self.turns):
            now += self.pauses.get(k, 0.0)
            times.append(round(now, 3))
            requests.append(self.request(messages))
            if k == self.turns - 1:
                responses.append(_assistant([_text(_final_answer(self.rng))]))
                break
            kind = "wide" if k == self.wide_turn else _PLAN[k % len(_PLAN)]
            assistant, user, think = self.step(kind)
            responses.append(assistant)
            messages = [*messages, assistant, user]
            now += self.rng.uniform(4.0, 40.0) + think
        return Session(requests, responses, times, self.model)

    def request(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The body Claude Code sends for `messages` (fresh objects, nothing shared)."""
        marker = {"type": "ephemeral"} if self.ttl == "5m" else {"type": "ephemeral", "ttl": "1h"}
        system = [_text(_IDENTITY), _text(SYSTEM_PROMPT)]
        messages = copy.deepcopy(messages)
        if self.cache == "claude_code":
            for block in system:
                block["cache_control"] = dict(marker)
            last = messages[-1]["content"][-1]
            last["cache_control"] = dict(marker)
        return {
            "model": self.model,
            "messages": messages,
            "temperature": 1,
            "system": system,
            "tools": copy.deepcopy(TOOLS),
            "metadata": {"user_id": "user_5e3b9a0c_account__session_8d41f2e7"},
            "max_tokens": 32000,
            "stream": True,
        }

    # ------------------------------------------------------------------------- steps

    def step(self, kind: str) -> tuple[dict[str, Any], dict[str, Any], float]:
        """The assistant reply for a plan step, the user message that answers it, and the
        extra seconds the user thinks before sending it."""
        if kind == "switch":
            assistant = _assistant([_text(_final_answer(self.rng))])
            return assistant, _user_task(self.rng), self.rng.uniform(60.0, 200.0)
        calls: list[tuple[str, dict[str, Any], str, bool]] = []  # name, input, result, error
        intro = ""
        if kind == "glob":
            intro = "Let me look at the layout of the source tree first."
            calls.append(self.glob("src/**/*.py"))
        elif kind in ("read", "read2"):
            paths = self.unread(2 if kind == "read2" else 1)
            intro = f"I'll read {' and '.join(paths)} to see how this is wired."
            calls.extend(self.read_file(p) for p in paths)
        elif kind == "reread":
            unchanged = [p for p, text in self.read.items() if self.files[p] == text]
            path = self.rng.choice(sorted(unchanged)) if unchanged else self.unread(1)[0]
            intro = f"Let me look at {path} again to check the call sites."
            calls.append(self.read_file(path))
        elif kind == "grep":
            calls.append(self.grep())
            intro = "Let me find where this is used."
        elif kind == "test_fail":
            intro = "Let me run the failing test."
            calls.append(self.run_tests())
        elif kind == "edit":
            path = self.rng.choice(sorted(self.read)) if self.read else self.unread(1)[0]
            intro = f"I see the problem in {path}. Let me fix it."
            calls.append(self.edit(path))
        elif kind == "todo":
            intro = "Let me update the plan."
            calls.append(self.todo())
        elif kind == "wide":
            intro = "I'll search for every place that touches these names in parallel."
            calls.extend(self.grep(small=True) for _ in range(10))
        else:  # pragma: no cover - the plan only holds the kinds above
            raise AssertionError(kind)
        blocks: list[dict[str, Any]] = [_text(intro)]
        results: list[dict[str, Any]] = []
        for name, tool_input, result, error in calls:
            tool_id = self.tool_id()
            blocks.append({"type": "tool_use", "id": tool_id, "name": name, "input": tool_input})
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id}
            block["content"] = result
            if error:
                block["is_error"] = True
            results.append(block)
        if kind == "todo":
            results.append(_text(_TODO_REMINDER))
        return _assistant(blocks), {"role": "user", "content": results}, 0.0

    def tool_id(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789"
        return "toolu_01" + "".join(self.rng.choice(alphabet) for _ in range(22))

    def unread(self, n: int) -> list[str]:
        paths = sorted(p for p in self.files if p not in self.read)
        if len(paths) < n:
            paths = sorted(self.files)
        return self.rng.sample(paths, n)

    def glob(self, pattern: str) -> tuple[str, dict[str, Any], str, bool]:
        listing = "\n".join(f"/home/user/project/{p}" for p in sorted(self.files))
        return "Glob", {"pattern": pattern}, listing, False

    def read_file(self, path: str) -> tuple[str, dict[str, Any], str, bool]:
        full = f"/home/user/project/{path}"
        if self.rng.random() < 0.04:
            return "Read", {"file_path": full + "x"}, "File does not exist.", True
        text = self.files[path]
        self.read[path] = text
        numbered = "\n".join(f"{n:>6}\t{line}" for n, line in enumerate(text.split("\n"), 1))
        return "Read", {"file_path": full}, numbered + _READ_REMINDER, False

    def grep(self, small: bool = False) -> tuple[str, dict[str, Any], str, bool]:
        if self.grep_patterns and not small and self.rng.random() < 0.5:
            pattern = self.rng.choice(self.grep_patterns)  # the same search again
        else:
            pattern = f"def {self.rng.choice(_VERBS)}_{self.rng.choice(_NOUNS)}"
            if not small:
                self.grep_patterns.append(pattern)
        hits = []
        for path in sorted(self.files):
            for n, line in enumerate(self.files[path].split("\n"), 1):
                if pattern.split()[-1] in line:
                    hits.append(f"/home/user/project/{path}:{n}:{line}")
        limit = 6 if small else 80
        result = "\n".join(hits[:limit]) or "No matches found"
        tool_input = {"pattern": pattern, "path": "/home/user/project", "output_mode": "content"}
        tool_input["-n"] = True
        return "Grep", tool_input, result, False

    def run_tests(self) -> tuple[str, dict[str, Any], str, bool]:
        command = "cd /home/user/project && python -m pytest tests/ -x -q 2>&1 | tail -80"
        log = _pytest_log(self.failing, self.files)
        return "Bash", {"command": command, "description": "Run the test suite"}, log, True

    def edit(self, path: str) -> tuple[str, dict[str, Any], str, bool]:
        lines = self.files[path].split("\n")
        candidates = [n for n, line in enumerate(lines) if line.strip().startswith("return ")]
        n = self.rng.choice(candidates) if candidates else len(lines) - 1
        old = lines[n]
        new = old + "  # checked"
        lines[n] = new
        self.files[path] = "\n".join(lines)
        low, high = max(0, n - 5), min(len(lines), n + 6)
        snippet = "\n".join(f"{i + 1:>6}\t{lines[i]}" for i in range(low, high))
        result = (
            f"The file /home/user/project/{path} has been updated. Here's the result of "
            f"running `cat -n` on a snippet of the edited file:\n{snippet}"
        )
        tool_input = {"file_path": f"/home/user/project/{path}", "old_string": old}
        tool_input["new_string"] = new
        return "Edit", tool_input, result, False

    def todo(self) -> tuple[str, dict[str, Any], str, bool]:
        todos = [
            {"content": f"Fix {self.failing}", "status": "in_progress", "activeForm": "Fixing"},
            {"content": "Run the full test suite", "status": "pending", "activeForm": "Running"},
            {"content": "Update the changelog", "status": "pending", "activeForm": "Updating"},
        ]
        result = (
            "Todos have been modified successfully. Ensure that you continue to use the todo "
            "list to track your progress. Please proceed with the current tasks if applicable"
        )
        return "TodoWrite", {"todos": todos}, result, False


# ---------------------------------------------------------------------------- content


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _assistant(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": blocks}


def _first_user_message(rng: random.Random) -> dict[str, Any]:
    claude_md = "\n".join(
        f"- {rng.choice(_VERBS).capitalize()} the {rng.choice(_NOUNS)} before the "
        f"{rng.choice(_NOUNS)}; never {rng.choice(_VERBS)} a {rng.choice(_NOUNS)} twice."
        for _ in range(40)
    )
    context = (
        "<system-reminder>\nAs you answer the user's questions, you can use the following "
        "context:\n# claudeMd\nCodebase and user instructions are shown below. Be sure to "
        "adhere to these instructions. IMPORTANT: These instructions OVERRIDE any default "
        "behavior and you MUST follow them exactly as written.\n\nContents of "
        f"/home/user/project/CLAUDE.md (project instructions, checked into the codebase):\n\n"
        f"# Project conventions\n{claude_md}\n</system-reminder>"
    )
    task = (
        "The test suite fails since yesterday's merge: one of the handler tests raises a "
        "KeyError. Find the cause and fix it, then run the tests."
    )
    return {"role": "user", "content": [_text(context), _text(task)]}


def _user_task(rng: random.Random) -> dict[str, Any]:
    pixels = bytes(rng.randrange(256) for _ in range(2400))
    image = {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(b"\x89PNG\r\n\x1a\n" + pixels).decode(),
        },
    }
    text = (
        f"Thanks. Now the {rng.choice(_NOUNS)} {rng.choice(_NOUNS)} shows the error in this "
        "screenshot from CI. Can you check the other handlers for the same mistake?"
    )
    return {"role": "user", "content": [image, _text(text)]}


def _final_answer(rng: random.Random) -> str:
    return (
        f"The failure came from `{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}`, which returned "
        f"the raw {rng.choice(_NOUNS)} instead of the checked value when the "
        f"{rng.choice(_NOUNS)} was missing. I fixed the return paths and the tests pass now."
    )


def _make_repo(rng: random.Random) -> dict[str, str]:
    files: dict[str, str] = {}
    for package in ("app", "core", "net"):
        for _ in range(6):
            path = f"src/{package}/{rng.choice(_NOUNS)}_{rng.choice(_NOUNS)}.py"
            files[path] = _python_file(rng, path, rng.randrange(2_000, 30_000))
    return files


def _python_file(rng: random.Random, path: str, size: int) -> str:
    lines = [
        f'"""{path}: the {rng.choice(_NOUNS)} {rng.choice(_NOUNS)} layer."""',
        "",
        "from __future__ import annotations",
        "",
        "import logging",
        "from typing import Any",
        "",
        "log = logging.getLogger(__name__)",
    ]
    total = sum(len(line) + 1 for line in lines)
    while total < size:
        name = f"{rng.choice(_VERBS)}_{rng.choice(_NOUNS)}"
        arg, other = rng.sample(_NOUNS, 2)
        kind = rng.choice(_TYPES)
        chunk = [
            "",
            "",
            f"def {name}({arg}: {kind}, {other}: {rng.choice(_TYPES)} = None) -> {kind}:",
            f'    """{name.replace("_", " ").capitalize()} from the {arg} and the {other}."""',
        ]
        for _ in range(rng.randrange(3, 12)):
            var = rng.choice(_NOUNS)
            chunk.append(f"    {var} = {rng.choice(_VERBS)}_{rng.choice(_NOUNS)}({arg}, {other})")
            if rng.random() < 0.3:
                chunk.append(f"    if {var} is None:")
                chunk.append(f'        log.debug("no {var} for %r", {arg})')
                chunk.append(f"        return {arg}")
        chunk.append(f"    return {rng.choice(_NOUNS)}")
        lines.extend(chunk)
        total += sum(len(line) + 1 for line in chunk)
    return "\n".join(lines) + "\n"


def _pytest_log(failing: str, files: Mapping[str, str]) -> str:
    tests = sorted(files)[:12]
    progress = "".join("." for _ in tests) + "F"
    frames = []
    for path in tests[:8]:
        frames.append(f"{path}:{len(files[path].splitlines()) // 2}: in {path.split('/')[-1][:-3]}")
        frames.append(f"    {files[path].splitlines()[10].strip()}")
    return (
        f"{progress}\n"
        "=================================== FAILURES ===================================\n"
        f"_________________________ {failing.split('::')[-1]} _________________________\n\n"
        "    def test_handler_roundtrip(client):\n"
        "        response = client.post('/v1/messages', json=REQUEST)\n"
        ">       assert response.json()['usage']['input_tokens'] == 12\n"
        "E       KeyError: 'usage'\n\n"
        + "\n".join(frames)
        + f"\n=========================== short test summary info ============================\n"
        f"FAILED {failing} - KeyError: 'usage'\n"
        f"!!!!!!!!!!!!!!!!!!!!!!!!!! stopping after 1 failures !!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        f"1 failed, {len(tests)} passed in 3.21s\n"
    )


# ---------------------------------------------------------------------------- tools, system


def _tool(
    name: str, description: str, properties: dict[str, Any], required: list[str]
) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def _prop(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **extra}


_USAGE = (
    "\n\nUsage notes:\n"
    "- The path parameters must be absolute paths, not relative paths.\n"
    "- You can call multiple tools in a single response. When multiple independent pieces of "
    "information are requested, batch your tool calls together for optimal performance.\n"
    "- Prefer the specialised tools over shell commands that do the same thing: they are "
    "faster, their output is easier to read, and the user can review them.\n"
    "- If a call fails, read the error, fix the arguments and try again rather than giving "
    "up; never retry the same failing call unchanged more than twice.\n"
)

TOOLS: list[dict[str, Any]] = [
    _tool(
        "Task",
        "Launch a new agent to handle complex, multi-step tasks autonomously. The agent has "
        "access to the same tools and works on its own until it returns a single message "
        "with its result, which is not visible to the user: summarise it for them. Use it "
        "for open-ended searches that may need several rounds of globbing and grepping, and "
        "launch several agents concurrently whenever possible." + _USAGE,
        {
            "description": _prop("string", "A short (3-5 word) description of the task"),
            "prompt": _prop("string", "The task for the agent to perform"),
            "subagent_type": _prop("string", "The type of specialised agent to use"),
        },
        ["description", "prompt", "subagent_type"],
    ),
    _tool(
        "Bash",
        "Executes a given bash command in a persistent shell session with optional timeout, "
        "ensuring proper handling and security measures. Before executing the command, "
        "verify that the parent directory exists with LS. Always quote file paths that "
        "contain spaces. Output over 30000 characters is truncated. Avoid find, grep, cat, "
        "head, tail and ls: use Glob, Grep, Read and LS instead. When issuing multiple "
        "commands, separate them with ';' or '&&', never with newlines. Keep the working "
        "directory stable by using absolute paths and avoiding cd.\n\nCommitting changes "
        "with git: only commit when the user asks. Run git status, git diff and git log in "
        "parallel first, draft a concise message that explains why, never update the git "
        "config, never push unless asked, and never use interactive flags such as -i." + _USAGE,
        {
            "command": _prop("string", "The command to execute"),
            "timeout": _prop("number", "Optional timeout in milliseconds (max 600000)"),
            "description": _prop(
                "string",
                "Clear, concise description of what this command does in 5-10 words, in "
                "active voice, for example 'List files in current directory'.",
            ),
            "run_in_background": _prop(
                "boolean", "Set to true to run this command in the background."
            ),
        },
        ["command"],
    ),
    _tool(
        "Glob",
        "Fast file pattern matching tool that works with any codebase size. Supports glob "
        "patterns like '**/*.js' or 'src/**/*.ts' and returns matching file paths sorted by "
        "modification time. Use it when you need to find files by name patterns; for open "
        "ended searches that may need several rounds, use the Task tool instead." + _USAGE,
        {
            "pattern": _prop("string", "The glob pattern to match files against"),
            "path": _prop(
                "string",
                "The directory to search in. If not specified, the current working directory "
                "is used. Omit the field for the default; never pass 'undefined' or 'null'.",
            ),
        },
        ["pattern"],
    ),
    _tool(
        "Grep",
        "A powerful search tool built on ripgrep. ALWAYS use Grep for search tasks, never "
        "grep or rg as a Bash command: this tool has been optimised for correct permissions "
        "and access. Supports full regex syntax, filtering files with the glob or type "
        "parameters, and three output modes: 'content' shows matching lines, "
        "'files_with_matches' shows only file paths (the default), 'count' shows match "
        "counts. Literal braces need escaping: use interface\\{\\} to find interface{} in "
        "Go code. Patterns match within single lines unless multiline is true." + _USAGE,
        {
            "pattern": _prop("string", "The regular expression pattern to search for"),
            "path": _prop("string", "File or directory to search in; defaults to the cwd"),
            "glob": _prop("string", "Glob pattern to filter files, e.g. '*.js' or '*.{ts,tsx}'"),
            "output_mode": _prop(
                "string",
                "Output mode; defaults to files_with_matches",
                enum=["content", "files_with_matches", "count"],
            ),
            "-B": _prop("number", "Lines to show before each match (content mode only)"),
            "-A": _prop("number", "Lines to show after each match (content mode only)"),
            "-C": _prop("number", "Lines to show before and after each match"),
            "-n": _prop("boolean", "Show line numbers in output (content mode only)"),
            "-i": _prop("boolean", "Case insensitive search"),
            "type": _prop("string", "File type to search (rg --type), e.g. js, py, rust"),
            "head_limit": _prop("number", "Limit output to the first N lines or entries"),
            "multiline": _prop("boolean", "Let patterns span lines (rg -U --multiline-dotall)"),
        },
        ["pattern"],
    ),
    _tool(
        "LS",
        "Lists files and directories in a given path. The path parameter must be an absolute "
        "path. You can optionally give an array of glob patterns to ignore. Prefer Glob and "
        "Grep if you know which directories to search." + _USAGE,
        {
            "path": _prop("string", "The absolute path to the directory to list"),
            "ignore": _prop("array", "List of glob patterns to ignore", items={"type": "string"}),
        },
        ["path"],
    ),
    _tool(
        "Read",
        "Reads a file from the local filesystem. You can access any file directly with this "
        "tool; assume it is valid to read a file the user gives a path to, and a missing "
        "file returns an error. By default it reads up to 2000 lines from the start of the "
        "file; you can give a line offset and limit for long files. Lines longer than 2000 "
        "characters are truncated. Results use cat -n format, with line numbers starting "
        "at 1. It can read images (PNG, JPG), shown visually, PDF files page by page, and "
        "Jupyter notebooks with their outputs. It cannot read directories: use LS. Read "
        "several potentially useful files in one batch when you can." + _USAGE,
        {
            "file_path": _prop("string", "The absolute path to the file to read"),
            "offset": _prop("number", "The line number to start reading from"),
            "limit": _prop("number", "The number of lines to read"),
        },
        ["file_path"],
    ),
    _tool(
        "Edit",
        "Performs exact string replacements in files. You must use Read at least once in "
        "the conversation before editing a file. When editing text from Read output, keep "
        "the exact indentation as it appears after the line number prefix, and never "
        "include any part of the prefix in old_string or new_string. The edit fails if "
        "old_string is not unique in the file: give more context to make it unique, or use "
        "replace_all to change every instance. Prefer editing existing files to writing new "
        "ones." + _USAGE,
        {
            "file_path": _prop("string", "The absolute path to the file to modify"),
            "old_string": _prop("string", "The text to replace"),
            "new_string": _prop("string", "The text to replace it with (must be different)"),
            "replace_all": _prop("boolean", "Replace all occurrences of old_string"),
        },
        ["file_path", "old_string", "new_string"],
    ),
    _tool(
        "Write",
        "Writes a file to the local filesystem, overwriting any existing file at the path. "
        "If the file exists you must Read it first. Always prefer editing existing files, "
        "never write new files unless explicitly required, and never create documentation "
        "files unless asked." + _USAGE,
        {
            "file_path": _prop("string", "The absolute path to the file to write"),
            "content": _prop("string", "The content to write to the file"),
        },
        ["file_path", "content"],
    ),
    _tool(
        "WebFetch",
        "Fetches content from a URL and processes it with an AI model: converts HTML to "
        "markdown, runs the prompt on it with a small fast model and returns the model's "
        "answer about the content. HTTP URLs are upgraded to HTTPS. Results are cached for "
        "15 minutes. When a URL redirects to another host, the tool says so and gives the "
        "redirect URL: fetch it with a new request." + _USAGE,
        {
            "url": _prop("string", "The URL to fetch content from", format="uri"),
            "prompt": _prop("string", "The prompt to run on the fetched content"),
        },
        ["url", "prompt"],
    ),
    _tool(
        "TodoWrite",
        "Use this tool to create and manage a structured task list for your current coding "
        "session. It helps you track progress, organise complex tasks and show the user "
        "that you are thorough. Use it for tasks of three steps or more, when the user gives "
        "several tasks, and after receiving new instructions; mark a task in_progress before "
        "starting it and completed as soon as it is done, with exactly one task in_progress "
        "at a time. Do not use it for a single trivial task." + _USAGE,
        {
            "todos": _prop(
                "array",
                "The updated todo list",
                items={
                    "type": "object",
                    "properties": {
                        "content": {"type": "string", "minLength": 1},
                        "status": {
                            "type": "string",
                            "enum": ["pending", "in_progress", "completed"],
                        },
                        "activeForm": {"type": "string", "minLength": 1},
                    },
                    "required": ["content", "status", "activeForm"],
                    "additionalProperties": False,
                },
            )
        },
        ["todos"],
    ),
]

_SECTIONS = {
    "Tone and style": (
        "You should be concise, direct, and to the point. When you run a non-trivial bash "
        "command, explain what it does and why. Your output is displayed on a command line "
        "interface and rendered as GitHub-flavored markdown in a monospace font. Only use "
        "tools to complete tasks; never use tools or code comments as a means to talk to "
        "the user. Minimise output tokens while keeping helpfulness, quality and accuracy. "
        "Answer in fewer than four lines unless the user asks for detail, without preamble "
        "or postamble."
    ),
    "Proactiveness": (
        "You are allowed to be proactive, but only when the user asks you to do something. "
        "Strike a balance between doing the right thing when asked, including follow-up "
        "actions, and not surprising the user with actions they did not ask for. If the "
        "user asks how to approach something, answer the question first, without acting."
    ),
    "Following conventions": (
        "When making changes to files, first understand the file's code conventions. Mimic "
        "code style, use existing libraries and utilities, and follow existing patterns. "
        "Never assume that a library is available: check that the codebase already uses it "
        "(neighbouring files, package.json, pyproject.toml). When you create a component, "
        "look at existing ones first. When you edit code, look at its surrounding context, "
        "especially its imports. Always follow security best practices: never expose or log "
        "secrets and keys, and never commit them."
    ),
    "Task management": (
        "You have access to the TodoWrite tool to help you manage and plan tasks. Use it "
        "very frequently to track your tasks and give the user visibility into your "
        "progress. It is also extremely helpful for planning and for breaking larger complex "
        "tasks into smaller steps. Mark todos as completed as soon as you are done with a "
        "task; do not batch up several tasks before marking them as completed."
    ),
    "Doing tasks": (
        "The user will primarily request you perform software engineering tasks: solving "
        "bugs, adding functionality, refactoring code, explaining code. For these, plan the "
        "task with TodoWrite if required, use the search tools extensively, in parallel and "
        "sequentially, to understand the codebase and the query, implement the solution with "
        "all tools available, verify it with the project's tests (never assume a test "
        "framework: read the README or search the codebase), and run the lint and typecheck "
        "commands when you have completed a task. Never commit changes unless the user "
        "explicitly asks you to."
    ),
    "Tool usage policy": (
        "When doing file search, prefer the Task tool to reduce context usage. When WebFetch "
        "returns a message about a redirect to a different host, immediately make a new "
        "WebFetch request with the redirect URL. You can call multiple tools in a single "
        "response: when multiple independent pieces of information are requested, batch "
        "your tool calls together for optimal performance. When making multiple bash tool "
        "calls, send a single message with multiple tool calls to run them in parallel."
    ),
    "Code references": (
        "When referencing specific functions or pieces of code include the pattern "
        "file_path:line_number to allow the user to easily navigate to the source code "
        "location, for example: clients are marked as failed in the connect function in "
        "src/services/process.ts:712."
    ),
}

SYSTEM_PROMPT = (
    "You are an interactive CLI tool that helps users with software engineering tasks. Use "
    "the instructions below and the tools available to you to assist the user.\n\n"
    "IMPORTANT: Assist with defensive security tasks only. Refuse to create, modify, or "
    "improve code that may be used maliciously. Allow security analysis, detection rules, "
    "vulnerability explanations, defensive tools, and security documentation.\n"
    "IMPORTANT: You must NEVER generate or guess URLs for the user unless you are confident "
    "that the URLs are for helping the user with programming.\n\n"
    + "\n\n".join(f"# {title}\n{text}" for title, text in _SECTIONS.items())
    + "\n\nHere is useful information about the environment you are running in:\n<env>\n"
    "Working directory: /home/user/project\nIs directory a git repo: Yes\nPlatform: linux\n"
    "OS Version: Linux 6.8.0-49-generic\nToday's date: 2026-11-23\n</env>\n"
    "You are powered by the model named Sonnet 4.5. The exact model ID is "
    "claude-sonnet-4-5-20250929.\n\ngitStatus: This is the git status at the start of the "
    "conversation. Note that this status is a snapshot in time, and will not update during "
    "the conversation.\nCurrent branch: main\n\nMain branch (you will usually use this for "
    "PRs): main\n\nStatus:\nM src/app/handlers.py\n\nRecent commits:\n"
    "a1b2c3d Merge branch 'usage-ledger'\n9f8e7d6 Ledger: batch writes\n"
    "5a4b3c2 Handlers: read usage from the stream\n"
)

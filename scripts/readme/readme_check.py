#!/usr/bin/env python3
"""Run README.md's walkthrough blocks and compare what they print with what README prints.

    readme_check.py README WORKDIR [--show] [--update]

scripts/readme-check.sh sets up the server and the environment, then calls this. It:

1. extracts the blocks marked `<!-- check: NAME -->` (the comment on the line before a fenced
   ```console or ```sh block; `<!-- check: NAME, skip-if-first-fails -->` makes the block
   optional: when its first command fails, say `pip install` with no network, the block is
   reported as skipped instead of failing);
2. runs every command of every marked block, in README order, in one bash process (so variables
   and functions carry over, as in a reader's terminal), each command's stdout and stderr going
   to a file of its own;
3. compares each command's output with the lines printed under it in README, by shape
   (see `match_value` and `match_text_line`).

In a ```console block a command is a line starting with `$ ` (a line ending in `\\` continues
it); the lines up to the next command are its output. A ```sh block is one command whose output
must be empty. `…` abridges: alone on a line it stands for any number of lines, inside a JSON
object for any other members, in an array for any other items, inside a string or a text line
for any text.

--show prints every command's output. --update rewrites, in README's output lines that matched,
the ids, times and secrets with this run's, so the printed values are one real run's.

The environment variable README_CHECK_PORTS maps the ports README uses to the check's own, e.g.
"8080=41234 9090=41235": they are rewritten in commands and in the printed outputs.
"""

import json
import os
import re
import subprocess
import sys
import time

ELLIPSIS = "…"
MARK = re.compile(r"^<!--\s*check:\s*([A-Za-z0-9_.-]+)\s*(?:,\s*([a-z-]+))?\s*-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
# Identifiers: a prefix, `_`, 14 base62 characters (Identifiers.swift). Prefixes may hold `_`
# (rzp_test_, test_rfnd_ in an ARN), so the whole run of [a-z_] before the last `_` is kept.
# An id may follow a digit (`Payment%20pay_…` in a UPI link).
ID = re.compile(r"(?<![A-Za-z_])([a-z][a-z_]*_)[0-9A-Za-z]{14}(?![A-Za-z0-9])")
# Numbers that are clocks or measurements, not amounts: compared by type only.
VARYING_NUMBERS = {"created_at", "at", "begin", "end", "next_attempt_at", "latency_ms", "sent_at",
                   "updated_at", "captured_at", "expire_by", "processed_at", "used_at"}
# Strings that are random and carry no id prefix: compared by type only.
VARYING_STRINGS = {"key_secret", "secret", "razorpay_signature", "rrn", "auth_code", "arn", "token"}


class Block:
    def __init__(self, name, option, kind, line):
        self.name, self.option, self.kind, self.line = name, option, kind, line
        self.commands = []  # [(command text, [expected output lines], README line number)]


def extract(readme_lines):
    blocks = []
    i = 0
    while i < len(readme_lines):
        mark = MARK.match(readme_lines[i])
        if not mark:
            i += 1
            continue
        if i + 1 >= len(readme_lines) or not FENCE.match(readme_lines[i + 1]):
            sys.exit(f"readme-check: README.md:{i + 1}: a check mark must be followed by a fenced block")
        kind = FENCE.match(readme_lines[i + 1]).group(1)
        if kind not in ("console", "sh"):
            sys.exit(f"readme-check: README.md:{i + 1}: checked blocks are ```console or ```sh, not ```{kind}")
        block = Block(mark.group(1), mark.group(2), kind, i + 1)
        j = i + 2
        body = []
        while j < len(readme_lines) and not readme_lines[j].startswith("```"):
            body.append((j + 1, readme_lines[j]))
            j += 1
        if j >= len(readme_lines):
            sys.exit(f"readme-check: README.md:{i + 1}: block {block.name} is not closed")
        if kind == "sh":
            block.commands.append(("\n".join(text for _, text in body), [], body[0][0] if body else j))
        else:
            k = 0
            while k < len(body):
                number, text = body[k]
                if not text.startswith("$ "):
                    sys.exit(f"readme-check: README.md:{number}: output before any command in block {block.name}")
                command = [text[2:]]
                while command[-1].endswith("\\") and k + 1 < len(body):
                    k += 1
                    command.append(body[k][1])
                k += 1
                output = []
                while k < len(body) and not body[k][1].startswith("$ "):
                    output.append(body[k][1])
                    k += 1
                while output and output[-1].strip() == "":
                    output.pop()
                block.commands.append(("\n".join(command), output, number))
        if any(b.name == block.name for b in blocks):
            sys.exit(f"readme-check: README.md:{i + 1}: two blocks are named {block.name}")
        blocks.append(block)
        i = j + 1
    return blocks


def port_map(reverse=False):
    pairs = []
    for item in os.environ.get("README_CHECK_PORTS", "").split():
        old, new = item.split("=")
        if reverse:
            old, new = new, old
        # A port after `:` (a URL), `=` or a space (`--port 18090`).
        pairs.append((re.compile(r"(?<=[:=\s])" + re.escape(old) + r"(?!\d)"), new))
    return pairs


def with_ports(text, pairs):
    for pattern, new in pairs:
        text = pattern.sub(new, text)
    return text


def script(blocks, workdir, pairs):
    """One bash script running every command, each into out/B_C (and its status into B_C.rc)."""
    lines = ["set +e", "exec </dev/null",
             "trap 'jobs -p | xargs -r kill 2>/dev/null' EXIT"]
    for b, block in enumerate(blocks):
        for c, (command, _, _) in enumerate(block.commands):
            out = f"{workdir}/out/{b}_{c}"
            lines.append(f"echo '{b} {c}' > {workdir}/out/current")
            body = with_ports(command, pairs)
            run = f"{{\n{body}\n}} > {out} 2>&1\necho $? > {out}.rc"
            if block.option == "skip-if-first-fails" and c > 0:
                run = f"if [ \"$(cat {workdir}/out/{b}_0.rc)\" = 0 ]; then\n{run}\nfi"
            lines.append(run)
    lines.append(f"echo done > {workdir}/out/current")
    return "\n".join(lines) + "\n"


# --- tolerant JSON: README's abridged objects ------------------------------------------------

WILD = object()  # `…` as a member or an item: any others


class Leaf:
    """A string, number, boolean or null of README's JSON, with where it is in the line."""

    def __init__(self, value, start, end):
        self.value, self.start, self.end = value, start, end


class Parser:
    TOKEN = re.compile(r'\s*(?:(…)|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(true|false|null)|([{}\[\]:,]))')

    def __init__(self, text):
        self.text, self.pos = text, 0

    def token(self):
        match = self.TOKEN.match(self.text, self.pos)
        if not match:
            raise ValueError(f"cannot read README's JSON at column {self.pos + 1}: {self.text[self.pos:self.pos + 30]!r}")
        self.pos = match.end()
        return match

    def peek(self):
        saved = self.pos
        match = self.token()
        self.pos = saved
        return match

    def value(self):
        t = self.token()
        if t.group(1):
            return WILD
        for group in (2, 3, 4):
            if t.group(group):
                return Leaf(json.loads(t.group(group)), t.start(group), t.end(group))
        if t.group(5) == "{":
            members, wild = [], False
            if self.peek().group(5) == "}":
                self.token()
                return ("object", members, wild)
            while True:
                if self.peek().group(1):
                    self.token()
                    wild = True
                else:
                    key = self.token()
                    if not key.group(2):
                        raise ValueError(f"expected a key at column {key.start() + 1}")
                    if self.token().group(5) != ":":
                        raise ValueError(f"expected ':' at column {self.pos}")
                    members.append((json.loads(key.group(2)), self.value()))
                sep = self.token().group(5)
                if sep == "}":
                    return ("object", members, wild)
                if sep != ",":
                    raise ValueError(f"expected ',' or '}}' at column {self.pos}")
        if t.group(5) == "[":
            items, wild = [], False
            if self.peek().group(5) == "]":
                self.token()
                return ("array", items, wild)
            while True:
                item = self.value()
                if item is WILD:
                    wild = True
                else:
                    items.append(item)
                sep = self.token().group(5)
                if sep == "]":
                    return ("array", items, wild)
                if sep != ",":
                    raise ValueError(f"expected ',' or ']' at column {self.pos}")
        raise ValueError(f"unexpected {t.group(0).strip()!r} at column {t.start() + 1}")

    def parse(self):
        v = self.value()
        if self.text[self.pos:].strip():
            raise ValueError(f"text after the JSON value: {self.text[self.pos:]!r}")
        return v


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "?"


def render(value):
    """A JSON string or number as Kosh writes it (`/` escaped as `\\/`)."""
    return json.dumps(value, ensure_ascii=False).replace("/", "\\/")


# HTTP dates (a `Date:` header) vary; they match any HTTP date.
HTTP_DATE = re.compile(r"\b[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\b")


def text_pattern(expected):
    """A regex for a README string or text line: ids match any id with their prefix, an HTTP
    date any HTTP date, `…` any text. The groups are the parts that vary."""
    out, pos = [], 0
    for m in re.finditer(r"…|" + HTTP_DATE.pattern + "|" + ID.pattern, expected):
        out.append(re.escape(expected[pos:m.start()]))
        if m.group(0) == ELLIPSIS:
            out.append(".*?")
        elif m.group(1):
            out.append("(" + re.escape(m.group(1)) + "[0-9A-Za-z]{14})")
        else:
            out.append("(" + HTTP_DATE.pattern + ")")
        pos = m.end()
    out.append(re.escape(expected[pos:]))
    return re.compile("".join(out), re.S)


def match_text(expected, actual):
    """(whether `actual` matches README's text, the varying spans of it: (start, end, new))."""
    pattern = text_pattern(expected)
    m = pattern.fullmatch(actual)
    if not m:
        return False, []
    # Where each group sits in README's text: the same order as in the pattern.
    spans = [x.span() for x in re.finditer(HTTP_DATE.pattern + "|" + ID.pattern, expected)]
    return True, [(s, e, m.group(k + 1)) for k, (s, e) in enumerate(spans)]


def match_value(e, a, path, key=None):
    """(None, replacements) when README's value `e` has the shape of the actual value `a`, else
    (why not, []). Replacements are (start, end, text) of README's line to make it print `a`."""
    if e is WILD:
        return None, []
    if isinstance(e, tuple) and e[0] == "object":
        if not isinstance(a, dict):
            return f"{path}: README has an object, the output has {type_name(a)} {json.dumps(a)[:80]}", []
        _, members, wild = e
        keys = [k for k, _ in members]
        missing = [k for k in keys if k not in a]
        if missing:
            return f"{path}: no key {', '.join(missing)} in the output (its keys: {', '.join(a)})", []
        if not wild:
            extra = [k for k in a if k not in keys]
            if extra:
                return f"{path}: the output has keys README does not show: {', '.join(extra)}", []
        replacements = []
        for k, v in members:
            why, more = match_value(v, a[k], f"{path}.{k}", k)
            if why:
                return why, []
            replacements += more
        return None, replacements
    if isinstance(e, tuple) and e[0] == "array":
        if not isinstance(a, list):
            return f"{path}: README has an array, the output has {type_name(a)}", []
        _, items, wild = e
        if len(a) < len(items) or (not wild and len(a) != len(items)):
            return f"{path}: README shows {len(items)}{'+' if wild else ''} items, the output has {len(a)}", []
        # In order first; then as a set (collections of things made in the same millisecond,
        # such as one event's webhook deliveries, have no fixed order).
        if not wild:
            results = [match_value(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(items, a))]
            if not any(why for why, _ in results):
                return None, [r for _, more in results for r in more]
        used, replacements = set(), []
        for i, x in enumerate(items):
            found, first_why = False, None
            for j, y in enumerate(a):
                if j in used:
                    continue
                why, more = match_value(x, y, f"{path}[{i}]")
                if why is None:
                    used.add(j)
                    replacements += more
                    found = True
                    break
                first_why = first_why or why
            if not found:
                return first_why or f"{path}[{i}]: no item of the output matches", []
        return None, replacements
    value = e.value
    if type_name(value) != type_name(a):
        return f"{path}: README has {type_name(value)} {json.dumps(value)}, the output has {type_name(a)} {json.dumps(a)[:80]}", []
    if isinstance(value, str):
        if key in VARYING_STRINGS:
            return None, ([(e.start, e.end, render(a))] if value != a and ELLIPSIS not in value else [])
        ok, spans = match_text(value, a)
        if not ok:
            return f"{path}: README has {json.dumps(value)}, the output has {json.dumps(a)}", []
        return None, ([(e.start, e.end, render(a))] if spans and ELLIPSIS not in value else [])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key in VARYING_NUMBERS:
            return None, ([(e.start, e.end, json.dumps(a))] if value != a else [])
        if value != a:
            return f"{path}: README has {json.dumps(value)}, the output has {json.dumps(a)}", []
        return None, []
    if value != a:
        return f"{path}: README has {json.dumps(value)}, the output has {json.dumps(a)}", []
    return None, []


def match_text_line(e, a):
    """(None, replacements) when the output's line `a` has the shape of README's line `e`."""
    stripped = e.strip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            expected = Parser(stripped).parse()
        except ValueError as error:
            return f"README's line is not JSON README can abridge: {error}", []
        try:
            actual = json.loads(a)
        except ValueError:
            return "README has a JSON line, the output's line is not JSON", []
        why, replacements = match_value(expected, actual, "$")
        indent = len(e) - len(e.lstrip())
        return why, [(s + indent, t + indent, new) for s, t, new in replacements]
    ok, spans = match_text(e.rstrip(), a.rstrip())
    return (None, spans) if ok else ("the lines differ", [])


def match_lines(expected, actual):
    """(None, {README line index: replacements}) when the output's lines match README's (a line
    `…` stands for any lines), else ((README line index, output line index, why) of the furthest
    mismatch, {})."""
    best = [(-1, -1, "")]

    def go(i, j):
        if i == len(expected):
            if j == len(actual):
                return {}
            best[0] = max(best[0], (i, j, "the output has more lines than README shows"))
            return None
        if expected[i].strip() == ELLIPSIS:
            for k in range(j, len(actual) + 1):
                rest = go(i + 1, k)
                if rest is not None:
                    return rest
            return None
        if j == len(actual):
            best[0] = max(best[0], (i, j, "the output has fewer lines than README shows"))
            return None
        why, replacements = match_text_line(expected[i], actual[j])
        if why:
            best[0] = max(best[0], (i, j, why))
            return None
        rest = go(i + 1, j + 1)
        if rest is not None and replacements:
            rest[i] = replacements
        return rest

    found = go(0, 0)
    return (None, found) if found is not None else (best[0], {})


def replace_spans(line, replacements):
    for start, end, new in sorted(replacements, reverse=True):
        line = line[:start] + new + line[end:]
    return line


def main():
    readme, workdir = sys.argv[1], sys.argv[2]
    show = "--show" in sys.argv[3:]
    update = "--update" in sys.argv[3:]
    name = os.path.basename(readme)
    with open(readme, encoding="utf-8") as f:
        readme_lines = f.read().split("\n")
    blocks = extract(readme_lines)
    updates = {}  # README line index (0-based) → the line with this run's values
    if not blocks:
        sys.exit("readme-check: README has no <!-- check: NAME --> blocks")
    pairs = port_map()
    back = port_map(reverse=True)
    os.makedirs(f"{workdir}/out", exist_ok=True)
    with open(f"{workdir}/walkthrough.sh", "w", encoding="utf-8") as f:
        f.write(script(blocks, workdir, pairs))
    print(f"readme-check: {len(blocks)} blocks, {sum(len(b.commands) for b in blocks)} commands: "
          + " ".join(b.name for b in blocks), flush=True)
    timeout = int(os.environ.get("README_CHECK_TIMEOUT", "600"))
    started = time.monotonic()
    process = subprocess.Popen(["bash", f"{workdir}/walkthrough.sh"], cwd=workdir, start_new_session=True)
    hung = None
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()
        with open(f"{workdir}/out/current") as f:
            hung = tuple(int(x) for x in f.read().split())
    elapsed = time.monotonic() - started

    failures, skipped = 0, []
    for b, block in enumerate(blocks):
        if hung and (b, 0) > hung:
            print(f"NOT RUN {block.name}")
            failures += 1
            continue
        if block.option == "skip-if-first-fails" and open(f"{workdir}/out/{b}_0.rc").read().strip() != "0":
            with open(f"{workdir}/out/{b}_0") as f:
                why = f.read().strip().splitlines()[-3:]
            print(f"SKIP {block.name} ({name}:{block.line}): its first command failed (an optional block: pip may have no network), so the rest was not run:\n"
                  f"  $ {block.commands[0][0]}\n" + "\n".join("  | " + line for line in why))
            skipped.append(block.name)
            continue
        block_ok = True
        for c, (command, expected, number) in enumerate(block.commands):
            if hung and (b, c) >= hung:
                if (b, c) == hung:
                    print(f"FAIL {block.name} ({name}:{number}): still running after {timeout} s, so stopped:\n  $ {command}")
                    failures += 1
                    block_ok = False
                break
            with open(f"{workdir}/out/{b}_{c}", encoding="utf-8", errors="replace") as f:
                actual = f.read().replace("\r\n", "\n").split("\n")
            while actual and actual[-1].strip() == "":
                actual.pop()
            rc = open(f"{workdir}/out/{b}_{c}.rc").read().strip()
            expected_here = [with_ports(line, pairs) for line in expected]
            mismatch, replacements = match_lines(expected_here, actual)
            for i, spans in replacements.items():
                # README line of output line i: after the command's own lines; README's ports back.
                updates[number + command.count("\n") + i] = with_ports(replace_spans(expected_here[i], spans), back)
            if show:
                print(f"--- {block.name} {name}:{number} (exit {rc})\n$ {command}\n" + "\n".join(actual))
            if rc != "0" or mismatch:
                failures += 1
                block_ok = False
                print(f"FAIL {block.name} ({name}:{number}): $ {command}")
                if rc != "0":
                    print(f"  exit status {rc}")
                if mismatch:
                    i, j, why = mismatch
                    print(f"  {why}")
                    if i < len(expected_here):
                        print(f"  - {name}:{number + i + 1 + command.count(chr(10))}: {expected_here[i]}")
                    if j < len(actual):
                        print(f"  + output line {j + 1}: {actual[j]}")
                print("  README prints:\n" + "\n".join("    " + line for line in expected_here or ["(nothing)"]))
                print("  the command printed:\n" + "\n".join("    " + line for line in actual or ["(nothing)"]))
        if block_ok:
            print(f"ok   {block.name} ({len(block.commands)} commands)")
    if update:
        for index, line in updates.items():
            readme_lines[index] = line
        with open(readme, "w", encoding="utf-8") as f:
            f.write("\n".join(readme_lines))
        print(f"readme-check: --update: rewrote the ids, times and secrets of {len(updates)} README lines "
              "with this run's (lines that did not match are left as they were)")
    print(f"readme-check: {len(blocks) - len(skipped)} blocks run in {elapsed:.0f} s, "
          f"{failures} failing commands" + (f", skipped: {' '.join(skipped)}" if skipped else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

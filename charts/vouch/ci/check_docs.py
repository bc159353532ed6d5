#!/usr/bin/env python3
"""Render every Helm values example of the documentation with the chart (called by scripts/chart-test.sh).

What counts as an example:
- a fenced ```yaml block whose first line is `# values.yaml` (the marker): rendered with
  `helm template -f` (values.schema.json and templates/_validate.tpl in force);
- a fenced yaml block without the marker whose top-level keys are all chart values (a values example
  someone forgot to mark): rendered, and reported as unmarked;
- `--set key=value` options, in code blocks (one helm command, `\\` continuations joined, is one render)
  and in inline code (one span is one render), and inline code of the form `key=value` whose first key is
  a top-level chart value: every key must exist in values.schema.json, and the options are rendered with
  `helm template --set`. A value with a placeholder (`<...>`, `…`, `$VAR`) and `--set-file` (the file is
  the reader's) are checked for their key only.
Each failure names the document and line.

usage: check_docs.py HELM CHART_DIR RELEASE NAMESPACE DOC.md...
"""

import json
import os
import re
import subprocess
import sys

import yaml

MARKER = "# values.yaml"
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
SET = re.compile(r"--set(?:-string|-file)?[ =](\S+)")
SET_FILE = re.compile(r"--set-file[ =](\S+)")
INLINE = re.compile(r"`([^`]+)`")
KEY_VALUE = re.compile(r"^([A-Za-z]\w*(?:\.[A-Za-z]\w*|\[\d+\])*)=(\S+)$")
PLACEHOLDER = re.compile(r"<[^>]*>|…|\$\{?[A-Z_]")


def blocks(lines):
    """(line of the first content line, language, content lines) of each fenced block."""
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3)
        start = i + 1
        i += 1
        body = []
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        yield start + 1, lang, body
        i += 1


def prose(lines):
    """(line number, text) of every line outside fenced blocks."""
    fence = None
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            yield n, line


def commands(start, body):
    """(line number, logical line) of a code block, `\\` continuations joined (comments kept: a `--set` in
    a comment is documentation too)."""
    logical, first = "", None
    for n, line in enumerate(body, start):
        if first is None:
            first = n
        code = line.split(" #", 1)[0].rstrip()
        if code.endswith("\\"):
            logical += code[:-1] + " " + line[len(code):] + " "
            continue
        yield first, logical + line
        logical, first = "", None
    if first is not None:
        yield first, logical


def schema_at(schema, key):
    """The schema of a --set key (a.b[0].c), or None when values.schema.json has no such key."""
    node = schema
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("["):
            if node.get("type") != "array":
                return None
            node = node.get("items", {})
            continue
        if node.get("type") not in (None, "object"):
            return None
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        if part in props:
            node = props[part]
        elif isinstance(extra, dict):
            node = extra
        elif extra is False:
            return None
        else:
            return {}  # a free-form object (e.g. webhook.objectSelector): anything below is allowed
    return node


class Checker:
    def __init__(self, helm, chart, release, namespace):
        self.helm, self.chart, self.release, self.namespace = helm, chart, release, namespace
        with open(os.path.join(chart, "values.schema.json")) as f:
            self.schema = json.load(f)
        self.top = set(self.schema["properties"])
        self.failures = []
        self.rendered = []
        self.key_only = []  # --set options whose value is a placeholder: the key is checked, not rendered

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")

    def render(self, where, args, stdin=None):
        r = subprocess.run(
            [self.helm, "template", self.release, self.chart, "-n", self.namespace, *args],
            input=stdin, capture_output=True, text=True,
        )
        if r.returncode != 0:
            err = " ".join(r.stderr.split())
            self.fail(where, f"does not render: {err}")
        else:
            self.rendered.append(where)

    def looks_like_values(self, body):
        try:
            docs = [d for d in yaml.safe_load_all("\n".join(body)) if d is not None]
        except yaml.YAMLError:
            return False
        return (
            len(docs) == 1 and isinstance(docs[0], dict) and docs[0]
            and all(k in self.top for k in docs[0])
        )

    def check_values_block(self, where, body):
        self.render(where, ["-f", "-"], stdin="\n".join(body) + "\n")

    def check_sets(self, where, pairs, files=()):
        args, placeholders = [], []
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                self.fail(where, f"--set {pair}: not key=value")
                continue
            if schema_at(self.schema, key) is None:
                self.fail(where, f"{key}: no such value in values.schema.json ({pair})")
                continue
            if pair in files or PLACEHOLDER.search(value):
                placeholders.append(key)
                continue
            args += ["--set", pair]
        if args:
            self.render(where, args)
        if placeholders:
            self.key_only.append(f"{where}: {', '.join(placeholders)}")

    def check_doc(self, doc):
        with open(doc) as f:
            lines = f.read().splitlines()
        for start, lang, body in blocks(lines):
            where = f"{doc}:{start}"
            if lang in ("yaml", "yml"):
                marked = bool(body) and body[0].strip().startswith(MARKER)
                if marked:
                    self.check_values_block(where, body)
                elif self.looks_like_values(body):
                    self.fail(where, f"chart values without the '{MARKER}' first line that marks an example")
                    self.check_values_block(where, body)
            for n, line in commands(start, body):
                pairs = SET.findall(line)
                if pairs:
                    self.check_sets(f"{doc}:{n}", pairs, SET_FILE.findall(line))
        for n, line in prose(lines):
            for span in INLINE.findall(line):
                pairs, files = SET.findall(span), SET_FILE.findall(span)
                if not pairs:
                    m = KEY_VALUE.match(span.strip())
                    if m and re.split(r"[.\[]", m.group(1))[0] in self.top:
                        pairs = [span.strip()]
                if pairs:
                    self.check_sets(f"{doc}:{n}", pairs, files)


def main():
    helm, chart, release, namespace = sys.argv[1:5]
    docs = sys.argv[5:]
    c = Checker(helm, chart, release, namespace)
    for doc in docs:
        c.check_doc(doc)
    for where in c.rendered:
        print(f"  {where}: rendered")
    for where in c.key_only:
        print(f"  {where}: key checked, value not rendered (a placeholder, or --set-file)")
    for f in c.failures:
        print(f"  FAIL {f}")
    print(f"  documentation: {len(c.rendered)} Helm values examples rendered from {len(docs)} documents, "
          f"{len(c.failures)} failures")
    sys.exit(1 if c.failures else 0)


if __name__ == "__main__":
    main()

"""The values table of helm/augur/README.md, from the `# --` comments of values.yaml.

    python scripts/helm_values_table.py            # print the table
    python scripts/helm_values_table.py --write    # replace it in helm/augur/README.md

The table sits between the README's ``<!-- values-table -->`` markers; a unit test
(tests/unit/helm/test_platform.py) fails when it is out of date.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1] / "helm" / "augur"
BEGIN, END = "<!-- values-table -->", "<!-- /values-table -->"


def documented(lines: list[str]) -> list[tuple[str, str]]:
    """(dotted key, description) of every value with a `# --` comment, in file order."""
    out: list[tuple[str, str]] = []
    path: list[tuple[int, str]] = []  # (indent, key) of the enclosing maps
    comment: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#") and comment is not None:
            comment.append(stripped[1:].strip())
            continue
        if not stripped or stripped.startswith("-") or ":" not in stripped:
            continue
        if stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key = stripped.split(":", 1)[0].strip()
        while path and path[-1][0] >= indent:
            path.pop()
        dotted = ".".join([k for _, k in path] + [key])
        if comment is not None:
            out.append((dotted, " ".join(comment)))
            comment = None
        path.append((indent, key))
    return out


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def table() -> str:
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    rows = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for key, description in documented(text.splitlines()):
        default = json.dumps(lookup(values, key))
        cell = description.replace("|", "\\|")
        rows.append(f"| `{key}` | `{default}` | {cell} |")
    return "\n".join(rows)


def main() -> int:
    readme = CHART / "README.md"
    text = readme.read_text()
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    new = f"{text[:begin]}\n{table()}\n{text[end:]}"
    if "--write" in sys.argv[1:]:
        readme.write_text(new)
    else:
        print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Rule text → a checked tree of rule nodes, or a :class:`RuleError` naming every problem.

Three gates, in order: a scan of the raw text (its size, and Python constructs that are
not in the language — calls, attribute access, subscripts, strings, imports, lambdas …),
the grammar (``_grammar.GRAMMAR``), then names, types, numbers and size limits. Nothing
is ever evaluated here, and nothing but :class:`RuleError` is raised on any text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from augur.decision._program import CONSTANTS, KPIS
from augur.rules._grammar import FORBIDDEN_WORDS, GRAMMAR

MAX_CHARS = 4_000
MAX_TOKENS = 600
MAX_DEPTH = 24
MAX_BRANCHES = 32
MAX_NUMBER = 1e6
TARGETS = ("size", "act")
BOOLEANS = {"true": True, "false": False, "True": True, "False": False}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rule text, at a 1-based line and column."""

    line: int
    column: int
    construct: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.construct}: {self.message}"


class RuleError(ValueError):
    """The text is not a rule set of the language; ``problems`` says where and why."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


# ------------------------------------------------------------------------ the tree


@dataclass(frozen=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True)
class Num(Node):
    value: float


@dataclass(frozen=True)
class Kpi(Node):
    name: str


@dataclass(frozen=True)
class Size(Node):
    """The size as assigned so far (the risk manager's Kelly size at first)."""


@dataclass(frozen=True)
class Bool(Node):
    value: bool


@dataclass(frozen=True)
class BinOp(Node):
    op: str  # + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Compare(Node):
    ops: tuple[str, ...]  # < <= > >= == !=
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Logic(Node):
    op: str  # and / or
    left: Node
    right: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Assign(Node):
    target: str  # size / act
    value: Node


@dataclass(frozen=True)
class Branch(Node):
    condition: Node | None  # None: the else branch
    body: tuple[Assign, ...]


@dataclass(frozen=True)
class Chain(Node):
    branches: tuple[Branch, ...]


@dataclass(frozen=True)
class Rules:
    """A parsed rule set: its chains in order, and the KPIs it reads."""

    chains: tuple[Chain, ...]
    kpis: tuple[str, ...]

    @property
    def branches(self) -> int:
        return sum(len(c.branches) for c in self.chains)


# ------------------------------------------------------------------------ gate 1: scan

_TOKEN = re.compile(
    r"(?P<comment>\#[^\n]*)|(?P<space>\s+)|(?P<number>(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)"
    r"|(?P<string>(?P<prefix>[rRbBuUfF]{0,2})(\"[^\"\n]*\"?|'[^'\n]*'?))"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>:=|\*\*|//|<=|>=|==|!=|.)",
    re.DOTALL,
)
_SYMBOLS = {
    ".": "attribute access",
    "[": "a subscript or list",
    "]": "a subscript or list",
    "{": "a dict or set",
    "}": "a dict or set",
    ",": "a tuple or argument list",
    ":=": "an assignment expression",
    "**": "a power (write x * x)",
    "//": "floor division",
    "%": "the modulo operator",
    "@": "a decorator or matrix product",
    "&": "a bitwise operator (use and)",
    "|": "a bitwise operator (use or)",
    "^": "a bitwise operator",
    "~": "a bitwise operator (use not)",
    "\\": "a line continuation",
    "`": "a backtick",
    "$": "an unknown symbol",
    "?": "an unknown symbol",
    "!": "an unknown symbol (use not or !=)",
}
_LANGUAGE_WORDS = {"if", "elif", "else", "and", "or", "not"}


def _scan(text: str) -> list[Problem]:
    """Problems visible in the raw text, before any parsing."""
    if len(text) > MAX_CHARS:
        return [
            Problem(1, 1, "rule too long", f"{len(text):,} characters; the limit is {MAX_CHARS:,}")
        ]
    problems: list[Problem] = []
    line, line_start = 1, 0
    tokens = depth = 0
    previous = ""  # the last significant token's kind: name / word / other
    previous_name = ""
    name_at = (1, 1)  # where previous_name starts
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        column = m.start() - line_start + 1
        if kind not in ("space", "comment"):
            tokens += 1
            if kind == "string":
                what = "an f-string" if "f" in m.group("prefix").lower() else "a string"
                problems.append(Problem(line, column, what, "rules hold no text values"))
            elif kind == "name" and value in FORBIDDEN_WORDS:
                problems.append(Problem(line, column, FORBIDDEN_WORDS[value], f"'{value}'"))
            elif kind == "op":
                if value == "(" and previous == "name":
                    problems.append(
                        Problem(*name_at, "a call", f"'{previous_name}(…)': rules call nothing")
                    )
                elif value in _SYMBOLS:
                    problems.append(Problem(line, column, _SYMBOLS[value], f"'{value}'"))
                if value == "(":
                    depth += 1
                    if depth == MAX_DEPTH + 1:
                        problems.append(
                            Problem(
                                line,
                                column,
                                "nesting too deep",
                                f"more than {MAX_DEPTH} open parentheses",
                            )
                        )
                elif value == ")":
                    depth -= 1
            if kind == "name":
                previous = "word" if value in _LANGUAGE_WORDS else "name"
                previous_name, name_at = value, (line, column)
            else:
                previous, previous_name = "other", ""
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = m.start() + value.rindex("\n") + 1
        if len(problems) >= 20:
            break
    if tokens > MAX_TOKENS:
        problems.append(
            Problem(1, 1, "rule too long", f"{tokens:,} tokens; the limit is {MAX_TOKENS:,}")
        )
    if not problems and tokens == 0:
        problems.append(Problem(1, 1, "empty rule", "write at least one if-branch"))
    return problems


# ------------------------------------------------------------------------ gate 2: grammar


@cache
def _parser() -> Any:
    from lark import Lark

    return Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=False)


_READABLE = {
    "COLON": "':'",
    "NAME": "a name",
    "NUMBER": "a number",
    "EQUAL": "'='",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMP_OP": "a comparison",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'",
    "MINUS": "'-'",
    "SEMICOLON": "';'",
    "IF": "'if'",
    "ELIF": "'elif'",
    "ELSE": "'else'",
    "AND": "'and'",
    "OR": "'or'",
    "NOT": "'not'",
    "$END": "the end",
}


def _expected(names: Any) -> str:
    readable = sorted({_READABLE.get(n, n) for n in names or ()})
    return ", ".join(readable[:8]) if readable else "nothing"


def _grammar_problem(exc: Exception) -> Problem:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if isinstance(exc, UnexpectedEOF):
        return Problem(
            getattr(exc, "line", 1) if getattr(exc, "line", -1) > 0 else 1,
            max(getattr(exc, "column", 1), 1),
            "incomplete rule",
            f"the text ends early; expected {_expected(exc.expected)}",
        )
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            return Problem(
                max(exc.line, 1),
                max(exc.column, 1),
                "incomplete rule",
                f"the text ends early; expected {_expected(exc.expected)}",
            )
        if token.type == "EQUAL":
            return Problem(
                exc.line, exc.column, "an assignment in a condition", "compare with '=='"
            )
        return Problem(
            exc.line,
            exc.column,
            "syntax",
            f"unexpected '{token}'; expected {_expected(exc.expected)}",
        )
    if isinstance(exc, UnexpectedCharacters):
        return Problem(exc.line, exc.column, "syntax", f"unexpected character {exc.char!r}")
    return Problem(1, 1, "syntax", str(exc).splitlines()[0] if str(exc) else "not a rule")


# ------------------------------------------------------------------------ gate 3: meaning


class _Builder:
    """Lark's tree → rule nodes, collecting problems of names, types and numbers."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.kpis: set[str] = set()

    def problem(self, at: Any, construct: str, message: str) -> None:
        self.problems.append(Problem(_line(at), _column(at), construct, message))

    def rules(self, tree: Any) -> Rules:
        chains = tuple(self.chain(c) for c in tree.children)
        branches = sum(len(c.branches) for c in chains)
        if branches > MAX_BRANCHES:
            self.problem(tree, "too many branches", f"{branches}; the limit is {MAX_BRANCHES}")
        return Rules(chains, tuple(k for k in KPIS if k in self.kpis))

    def chain(self, tree: Any) -> Chain:
        branches = []
        children = list(tree.children)
        branches.append(self.branch(tree, children[0], children[1]))
        for child in children[2:]:
            if child.data == "elif_":
                branches.append(self.branch(child, child.children[0], child.children[1]))
            else:
                branches.append(self.branch(child, None, child.children[0]))
        return Chain(_line(tree), _column(tree), tuple(branches))

    def branch(self, at: Any, condition: Any, body: Any) -> Branch:
        cond = None
        if condition is not None:
            cond = self.expr(condition)
            self.expect(cond, "bool", "a condition", condition)
        assigns = tuple(self.assign(a) for a in body.children)
        return Branch(_line(at), _column(at), cond, assigns)

    def assign(self, tree: Any) -> Assign:
        name, value = tree.children
        target = str(name)
        node = self.expr(value)
        if target not in TARGETS:
            self.problem(
                name,
                "an assignment",
                f"to '{target}': a rule assigns only size (a number) or act (true/false)",
            )
        else:
            self.expect(node, "num" if target == "size" else "bool", f"{target} =", value)
        return Assign(name.line, name.column, target, node)

    def expect(self, node: Node, wanted: str, what: str, at: Any) -> None:
        got = _type(node)
        if got is not None and got != wanted:
            kind = "a number" if wanted == "num" else "true/false (a comparison)"
            self.problem(at, "a type error", f"{what} needs {kind}")

    def expr(self, tree: Any) -> Node:
        from lark import Token

        if isinstance(tree, Token):  # a bare NAME/NUMBER kept by ?-rules
            return self.leaf(tree)
        line, column = _line(tree), _column(tree)
        kind, kids = tree.data, tree.children
        if kind == "number":
            return self.number(kids[0])
        if kind == "name":
            return self.leaf(kids[0])
        if kind == "neg":
            operand = self.expr(kids[0])
            self.expect(operand, "num", "'-'", tree)
            return Neg(line, column, operand)
        if kind == "binop":
            left, right = self.expr(kids[0]), self.expr(kids[2])
            for side in (left, right):
                self.expect(side, "num", f"'{kids[1]}'", tree)
            return BinOp(line, column, str(kids[1]), left, right)
        if kind == "compare":
            operands = tuple(self.expr(k) for k in kids[0::2])
            for side in operands:
                self.expect(side, "num", "a comparison", tree)
            return Compare(line, column, tuple(str(k) for k in kids[1::2]), operands)
        if kind in ("and_", "or_"):
            left, right = self.expr(kids[0]), self.expr(kids[1])
            for side in (left, right):
                self.expect(side, "bool", f"'{kind[:-1]}'", tree)
            return Logic(line, column, kind[:-1], left, right)
        if kind == "not_":
            operand = self.expr(kids[0])
            self.expect(operand, "bool", "'not'", tree)
            return Not(line, column, operand)
        self.problem(tree, "syntax", f"unexpected {kind}")
        return Num(line, column, 0.0)

    def number(self, token: Any) -> Num:
        value = float(token)
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            self.problem(token, "a number out of range", f"{token}: |x| must be at most 1e6")
            value = 0.0
        return Num(token.line, token.column, value)

    def leaf(self, token: Any) -> Node:
        if token.type == "NUMBER":
            return self.number(token)
        name = str(token)
        if name in KPIS:
            self.kpis.add(name)
            return Kpi(token.line, token.column, name)
        if name in CONSTANTS:
            return Num(token.line, token.column, CONSTANTS[name])
        if name in BOOLEANS:
            return Bool(token.line, token.column, BOOLEANS[name])
        if name == "size":
            return Size(token.line, token.column)
        self.problem(
            token,
            "an unknown name",
            f"'{name}' is not a KPI, a constant or size (KPIs: {', '.join(KPIS)}; "
            f"constants: {', '.join(CONSTANTS)}, true, false)",
        )
        return Num(token.line, token.column, 0.0)


def _type(node: Node) -> str | None:
    if isinstance(node, Num | Kpi | Size | BinOp | Neg):
        return "num"
    if isinstance(node, Bool | Compare | Logic | Not):
        return "bool"
    return None


def _line(at: Any) -> int:
    line = getattr(at, "line", None)
    if line is None:
        meta = getattr(at, "meta", None)
        line = getattr(meta, "line", 1) if meta is not None and not meta.empty else 1
    return int(line)


def _column(at: Any) -> int:
    column = getattr(at, "column", None)
    if column is None:
        meta = getattr(at, "meta", None)
        column = getattr(meta, "column", 1) if meta is not None and not meta.empty else 1
    return int(column)


def _depth(tree: Any) -> int:
    """The tree's depth, without recursion."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((c, d + 1) for c in getattr(node, "children", ()))
    return deepest


def parse(text: str) -> Rules:
    """Parse and check ``text``; raises :class:`RuleError` with every problem found."""
    if not isinstance(text, str):
        raise RuleError([Problem(1, 1, "not text", f"a rule is text, not {type(text).__name__}")])
    problems = _scan(text)
    if problems:
        raise RuleError(problems)
    from lark.exceptions import LarkError

    try:
        tree = _parser().parse(text)
    except LarkError as exc:
        raise RuleError([_grammar_problem(exc)]) from None
    if _depth(tree) > MAX_DEPTH * 3:
        raise RuleError([Problem(1, 1, "nesting too deep", "the expression nests too deeply")])
    builder = _Builder()
    rules = builder.rules(tree)
    if builder.problems:
        raise RuleError(builder.problems)
    return rules

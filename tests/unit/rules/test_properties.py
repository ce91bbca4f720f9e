"""Properties of the rule language, over random input: arbitrary text only ever raises
RuleError; Python outside the language is always refused; rules inside it answer the
same through the engine's stack machine (one entry at a time) and the array evaluator."""

from __future__ import annotations

import ast

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from augur.decision._program import CONSTANTS, KPIS, run
from augur.rules import RuleError, compile_rules, evaluate, parse

NAMES = [*KPIS, *CONSTANTS, "size"]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_raises_rule_error(text: str) -> None:
    try:
        parse(text)
    except RuleError as exc:
        assert exc.problems


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "if",
                "elif",
                "else",
                ":",
                "size",
                "act",
                "=",
                "(",
                ")",
                "and",
                "or",
                "not",
                "<",
                "==",
                "+",
                "-",
                "*",
                "/",
                ";",
                "1.5",
                "confidence",
                "true",
                "\n",
            ]
        ),
        max_size=40,
    )
)
def test_any_token_soup_parses_or_raises_rule_error(tokens: list[str]) -> None:
    try:
        parse(" ".join(tokens))
    except RuleError as exc:
        assert exc.problems


# --- Python outside the language -------------------------------------------------------

_leaf = st.one_of(
    st.sampled_from(NAMES).map(lambda n: ast.Name(n)),
    st.floats(0, 100, allow_nan=False).map(lambda v: ast.Constant(round(v, 3))),
)


def _forbidden(inner: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """One construct the language leaves out, around an expression."""
    return st.one_of(
        st.tuples(inner, st.lists(inner, max_size=2)).map(lambda t: ast.Call(t[0], t[1], [])),
        st.tuples(inner, st.sampled_from(["real", "__class__", "system"])).map(
            lambda t: ast.Attribute(t[0], t[1])
        ),
        st.tuples(inner, inner).map(lambda t: ast.Subscript(t[0], t[1])),
        inner.map(lambda e: ast.Lambda(ast.arguments([], [], None, [], [], None, []), e)),
        inner.map(
            lambda e: ast.ListComp(e, [ast.comprehension(ast.Name("x"), ast.Name("kelly"), [], 0)])
        ),
        inner.map(lambda e: ast.JoinedStr([ast.FormattedValue(e, -1)])),
        st.text(alphabet="abc xyz", max_size=5).map(ast.Constant),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: ast.List(xs)),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: ast.Set(xs)),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: ast.Tuple(xs)),
        st.tuples(inner, inner).map(lambda t: ast.Dict([t[0]], [t[1]])),
        inner.map(lambda e: ast.NamedExpr(ast.Name("x"), e)),
        st.tuples(inner, inner).map(lambda t: ast.BinOp(t[0], ast.Pow(), t[1])),
        st.tuples(inner, inner).map(lambda t: ast.BinOp(t[0], ast.Mod(), t[1])),
        st.tuples(inner, inner).map(lambda t: ast.BinOp(t[0], ast.BitAnd(), t[1])),
        st.tuples(inner, inner).map(lambda t: ast.Compare(t[0], [ast.In()], [t[1]])),
        st.tuples(inner, inner).map(lambda t: ast.Compare(t[0], [ast.Is()], [t[1]])),
        st.tuples(inner, inner, inner).map(lambda t: ast.IfExp(t[0], t[1], t[2])),
        inner.map(lambda e: ast.UnaryOp(ast.Invert(), e)),
    )


_any = st.recursive(
    _leaf,
    lambda inner: st.one_of(
        _forbidden(inner), st.tuples(inner, inner).map(lambda t: ast.BinOp(t[0], ast.Add(), t[1]))
    ),
    max_leaves=6,
)
_outside = _forbidden(_any)  # a construct the language leaves out, at the top at least


@settings(max_examples=300, deadline=None)
@given(
    _outside,
    st.sampled_from(
        ["if {e} > 0: size = 1", "if confidence > 0: size = {e}", "if {e}: act = false"]
    ),
)
def test_python_outside_the_language_is_refused(expr: ast.expr, template: str) -> None:
    text = template.format(e=ast.unparse(ast.fix_missing_locations(expr)))
    try:
        parse(text)
    except RuleError:
        return
    raise AssertionError(f"accepted: {text!r}")


# --- rules inside the language ---------------------------------------------------------

_num_leaf = st.one_of(
    st.sampled_from([*KPIS, *CONSTANTS, "size"]),
    st.floats(-5, 5, allow_nan=False).map(lambda v: repr(round(v, 3))),
    st.sampled_from(["0", "1", "0.5"]),
)


def _num(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from("+-*/"), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"-{e}"),
    )


_nums = st.recursive(_num_leaf, _num, max_leaves=4)


def _bool(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"not {e}"),
    )


_compare = st.tuples(
    _nums,
    st.lists(
        st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _nums),
        min_size=1,
        max_size=2,
    ),
).map(lambda t: "(" + t[0] + "".join(f" {op} {x}" for op, x in t[1]) + ")")
_bools = st.recursive(st.one_of(_compare, st.sampled_from(["true", "false"])), _bool, max_leaves=3)
_assign = st.one_of(_nums.map(lambda e: f"size = {e}"), _bools.map(lambda e: f"act = {e}"))
_body = st.lists(_assign, min_size=1, max_size=2).map("; ".join)
_chain = st.tuples(
    st.tuples(_bools, _body),
    st.lists(st.tuples(_bools, _body), max_size=2),
    st.one_of(st.none(), _body),
).map(
    lambda t: (
        f"if {t[0][0]}: {t[0][1]}\n"
        + "".join(f"elif {c}: {b}\n" for c, b in t[1])
        + (f"else: {t[2]}\n" if t[2] is not None else "")
    )
)
_rules = st.lists(_chain, min_size=1, max_size=2).map("".join)

_kpi_values = st.sampled_from([0.0, 1.0, -1.0, 0.5, 2.0, 3.0, 0.02, 1e-9])


@settings(max_examples=300, deadline=None)
@given(
    _rules,
    st.lists(st.lists(_kpi_values, min_size=len(KPIS), max_size=len(KPIS)), min_size=1, max_size=8),
)
def test_the_machine_and_the_array_evaluator_agree(text: str, rows: list[list[float]]) -> None:
    try:
        rules = parse(text)
    except RuleError as exc:  # the generator stays inside the language but for limits
        assert all(p.construct in ("rule too long", "nesting too deep") for p in exc.problems)
        return
    table = np.array(rows, dtype=float)
    act, size = evaluate(rules, table)
    program = compile_rules(rules)
    ops, args = program.arrays()
    for i, row in enumerate(table):
        one_act, one_size = run(ops, args, program.stack, row)
        assert one_act == act[i], text
        assert one_size == size[i] or (np.isnan(one_size) and np.isnan(size[i])), text

"""The rule language's grammar (lark, LALR), and the Python constructs it leaves out.

A rule set is one or more ``if``/``elif``/``else`` chains; each branch assigns ``size``
or ``act``. Expressions are comparisons, ``and``/``or``/``not`` and ``+ - * /`` over KPI
names, named constants and numbers. Newlines are whitespace; ``;`` may separate two
assignments; ``#`` starts a comment.
"""

from __future__ import annotations

GRAMMAR = r"""
start: chain+
chain: "if" expr ":" body elif_* else_?
elif_: "elif" expr ":" body
else_: "else" ":" body
body: assign (";"? assign)*
assign: NAME "=" expr

?expr: or_expr
?or_expr: and_expr | or_expr "or" and_expr -> or_
?and_expr: not_expr | and_expr "and" not_expr -> and_
?not_expr: comparison | "not" not_expr -> not_
?comparison: sum | sum (COMP_OP sum)+ -> compare
?sum: product | sum ADD_OP product -> binop
?product: unary | product MUL_OP unary -> binop
?unary: atom | "-" unary -> neg
?atom: NUMBER -> number
     | NAME -> name
     | "(" expr ")"

COMP_OP: "<=" | ">=" | "==" | "!=" | "<" | ">"
ADD_OP: "+" | "-"
MUL_OP: "*" | "/"
NAME: /[A-Za-z_][A-Za-z_0-9]*/
NUMBER: /(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/
COMMENT: /#[^\n]*/
%ignore /[ \t\f\r\n]+/
%ignore COMMENT
"""

#: Python keywords that have no place in a rule, with what they would be.
FORBIDDEN_WORDS: dict[str, str] = {
    "import": "an import",
    "from": "an import",
    "lambda": "a lambda",
    "def": "a function definition",
    "class": "a class definition",
    "for": "a loop or comprehension",
    "while": "a loop",
    "in": "a membership test or comprehension",
    "is": "an identity test",
    "return": "a return",
    "yield": "a generator",
    "await": "an await",
    "async": "async code",
    "with": "a with-block",
    "try": "exception handling",
    "except": "exception handling",
    "raise": "a raise",
    "assert": "an assert",
    "global": "a global declaration",
    "nonlocal": "a nonlocal declaration",
    "del": "a deletion",
    "pass": "a pass statement",
    "exec": "code execution",
    "eval": "code execution",
    "None": "None",
}

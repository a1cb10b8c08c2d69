"""The measured rules of STYLE.md on `keras_siamese/`: modules and functions stay small.

No module over 400 lines; no function or method over 60 lines of code, where lines of code
are the function's lines less its docstring, blank lines and comment-only lines (a nested
function counts within its parent's span too). Pure `ast`: nothing is imported, so the test
takes well under a second.
"""

from __future__ import annotations

import ast
import pathlib
import textwrap

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_siamese"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _docstring_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> range:
    """The line numbers of the function's docstring (empty when it has none)."""
    first = function.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return range(first.lineno, first.end_lineno + 1)
    return range(0)


def code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> int:
    """Lines of code of `function`: from `def` (decorators excluded) to its last line, less
    its docstring, blank lines and comment-only lines."""
    docstring = _docstring_lines(function)
    return sum(
        1
        for number in range(function.lineno, function.end_lineno + 1)
        if number not in docstring
        and lines[number - 1].strip()
        and not lines[number - 1].strip().startswith("#")
    )


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[int, str, int]]:
    """`(line, name, lines of code)` of every function and method of `source` over `limit`."""
    lines = source.splitlines()
    return [
        (node.lineno, node.name, count)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (count := code_lines(node, lines)) > limit
    ]


def _modules() -> list[pathlib.Path]:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no module found under {PACKAGE}"
    return modules


def _relative(path: pathlib.Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_no_module_over_400_lines():
    offenders = [
        f"{_relative(path)}: {count} lines"
        for path in _modules()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert not offenders, (
        f"Modules over {MAX_MODULE_LINES} lines (split them by concept, STYLE.md):\n"
        + "\n".join(offenders)
    )


def test_no_function_over_60_lines_of_code():
    offenders = [
        f"{_relative(path)}:{line} {name}: {count} lines"
        for path in _modules()
        for line, name, count in long_functions(path.read_text(encoding="utf-8"))
    ]
    assert not offenders, (
        f"Functions over {MAX_FUNCTION_LINES} lines of code (docstring, blanks and comments "
        "not counted; split them into named steps, STYLE.md):\n" + "\n".join(offenders)
    )


def _function(name: str, statements: int) -> str:
    """A function with a docstring, a comment and blank lines around `statements` lines."""
    body = "\n".join(
        f"    value_{index} = {index}  # a trailing comment counts"
        for index in range(statements - 2)
    )
    return (
        textwrap.dedent(
            f'''
        def {name}(argument):
            """A docstring

            over several lines, none of them code.
            """
            # A comment line.

        '''
        )
        + body
        + "\n\n    # Another comment.\n    return argument\n"
    )


def test_code_lines_counts_only_code():
    source = textwrap.dedent(
        '''
        class Holder:
            def method(self):
                """One-line docstring."""

                # comment
                first = 1
                    # an indented comment
                second = (
                    first
                )
                return second
        '''
    )
    method = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef))
    # def, first = 1, second = (, first, ), return second.
    assert code_lines(method, source.splitlines()) == 6


def test_code_lines_counts_nested_functions_in_their_parent():
    source = "def outer():\n    def inner():\n        return 1\n\n    return inner\n"
    counts = {
        node.name: code_lines(node, source.splitlines())
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef)
    }
    assert counts == {"outer": 4, "inner": 2}


def test_a_61_line_function_is_flagged_and_a_60_line_one_is_not():
    # The `def` line, n - 2 assignments and the `return`: `_function(name, n)` has n lines of
    # code in n + 9 lines (docstring, comments and blanks).
    at_limit, over_limit = _function("at_limit", 60), _function("over_limit", 61)
    assert long_functions(at_limit) == []
    assert long_functions(over_limit) == [(2, "over_limit", 61)]
    assert long_functions(at_limit + over_limit) == [
        (2 + len(at_limit.splitlines()), "over_limit", 61)
    ]


def registered_test_classes(source: str) -> list[str]:
    """Names of the classes `source` registers with `register_keras_serializable`."""
    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef)
        and any("register_keras_serializable" in ast.unparse(d) for d in node.decorator_list)
    ]


def test_no_two_test_modules_register_one_class_name():
    """Two test modules registering one name make `load_model` return whichever class was
    imported last, so a round trip's config names the other module: an order-dependent
    failure under pytest-xdist (MoCo's and NNCLR's `FlipSecondHalf` once did this)."""
    owners: dict[str, list[str]] = {}
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        for name in registered_test_classes(path.read_text()):
            owners.setdefault(name, []).append(path.name)
    assert {name: files for name, files in owners.items() if len(files) > 1} == {}


def test_registered_test_classes_finds_decorated_classes_only():
    source = textwrap.dedent(
        """
        @keras.saving.register_keras_serializable(package="p")
        class A(Layer): pass
        class B(Layer): pass
        """
    )
    assert registered_test_classes(source) == ["A"]

"""The pipeline reads top to bottom: `_run` enters the steps in the order STEPS lists them
(each entry a fault-injection point) and calls each step's one function by its name."""

from __future__ import annotations

import ast
import inspect

from tova.server import pipeline


def _run_body() -> list[ast.AST]:
    tree = ast.parse(inspect.getsource(pipeline._run))
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)
    return [n for n in ast.walk(fn) if isinstance(n, ast.stmt | ast.expr)]


def test_run_enters_every_step_in_order_and_calls_its_function():
    entered, called = [], []
    for node in _run_body():
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "enter":
            assert isinstance(node.args[0], ast.Constant)
            entered.append((node.lineno, node.args[0].value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("step_"):
            called.append((node.lineno, node.func.id.removeprefix("step_")))
    assert [name for _, name in sorted(entered)] == list(pipeline.STEPS)
    assert [name for _, name in sorted(called)] == list(pipeline.STEPS)
    for step in pipeline.STEPS:
        assert callable(getattr(pipeline, f"step_{step}"))


def test_no_step_is_looked_up_by_name():
    source = inspect.getsource(pipeline)
    assert "globals()" not in source and "getattr(" not in source

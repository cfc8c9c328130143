"""The size rules of STYLE.md, held by a test: no module of `tuner` over 450 lines,
no function over 60 (its signature, docstring and body)."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 60


def test_no_module_over_450_lines_and_no_function_over_60() -> None:
    modules = sorted((ROOT / "tuner").rglob("*.py"))
    assert len(modules) > 50
    long_files, long_functions = [], []
    for path in modules:
        source = path.read_text()
        if (lines := len(source.splitlines())) > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(ROOT)}: {lines}")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long_files, long_files
    assert not long_functions, long_functions

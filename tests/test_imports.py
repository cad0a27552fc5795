"""The package's import graph, read from the source (function-level imports included)."""

import ast
from pathlib import Path

import gcbench

PACKAGE = Path(gcbench.__file__).parent


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.glob("*.py"):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:  # from .x import y
                    found.add(node.module.split(".")[0])
                else:  # from . import x, y
                    found.update(alias.name for alias in node.names)
        graph[path.stem] = found
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_assets_and_checkpoint_do_not_import_each_other_in_a_cycle():
    graph = _graph()
    assert "checkpoint" in graph["assets"]
    assert "assets" not in _reachable(graph, "checkpoint")


def test_evaluation_never_reaches_the_training_loop():
    graph = _graph()
    for module in ("evaluate", "sample", "metrics", "features", "runtime"):
        assert "train" not in _reachable(graph, module), module


def test_cli_and_launch_do_not_import_each_other_in_a_cycle():
    graph = _graph()
    assert "launch" in graph["cli"]  # cli submits jobs through launch
    assert "cli" not in _reachable(graph, "launch")  # jobs reach the command by entry point

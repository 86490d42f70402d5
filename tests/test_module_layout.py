"""The simulator's and the CLI's modules import each other without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every ``known`` module ``path`` imports, anywhere in it (also inside functions and
    ``if TYPE_CHECKING``), ``from pkg import mod`` counted as importing ``pkg.mod``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known
            )
    return found


def _cycle(package: str, leave_out: str = "") -> list[str]:
    files = sorted((ROOT / package.replace(".", "/")).rglob("*.py"))
    names = {_module_name(f): f for f in files}
    names = {n: f for n, f in names.items() if not (leave_out and n.startswith(leave_out))}
    known = set(names)
    graph = {name: _imports(path, known) - {name} for name, path in names.items()}
    # a package's __init__ importing its own submodules is how re-exports work, not a circle
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".") or m == name}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return []


def test_simulator_modules_import_without_a_circle() -> None:
    # the DingTalk simulator (not wired yet) types its mixins against its simulator object
    assert _cycle("bot.simulator", leave_out="bot.simulator.dingtalk") == []


def test_cli_modules_import_without_a_circle() -> None:
    assert _cycle("bot.cli") == []


def test_cli_modules_use_no_private_helper_of_another() -> None:
    """Shared helpers are public in ``bot.cli.common``; no module imports another's ``_x``."""
    for path in sorted((ROOT / "bot/cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot."):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"

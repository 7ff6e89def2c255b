"""The import directions of ../shared/ARCHITECTURE.md, enforced by reading the source."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "proxy"
PACKAGE = ROOT.name

# module folder or file -> top-level packages it must never import
# The process wiring sits on top: nothing below it imports it.
_PROCESS = {"proxy.cli", "proxy.lifecycle", "proxy.workers", "proxy.migrate"}
FORBIDDEN = {
    "routing": {"aiohttp", "kubernetes_asyncio", "prometheus_client", "asyncio", "ssl", "socket", "uvloop",
                "httptools", "proxy.kube", "proxy.upstream", "proxy.server", "proxy.http", "proxy.tls",
                "proxy.metrics", "proxy.admin", "proxy.controller", *_PROCESS},
    "tls": {"aiohttp", "kubernetes_asyncio", "prometheus_client", "proxy.kube", "proxy.upstream", "proxy.server",
            "proxy.http", "proxy.routing", *_PROCESS},
    "kube": {"proxy.routing", "proxy.http", "proxy.server", "proxy.upstream", *_PROCESS},
    "upstream": {"kubernetes_asyncio", "prometheus_client", "proxy.kube", "proxy.server", "proxy.http", *_PROCESS},
    "http": {"kubernetes_asyncio", "prometheus_client", "aiohttp", "proxy.kube", "proxy.controller", "proxy.admin",
             *_PROCESS},
    # Tracing is below the request path: bytes in, bytes out, a thread of its own for the export.
    "tracing": {"kubernetes_asyncio", "prometheus_client", "aiohttp", "asyncio", "uvloop", "httptools",
                "proxy.kube", "proxy.routing", "proxy.upstream", "proxy.server", "proxy.http", "proxy.tls",
                "proxy.metrics", "proxy.admin", "proxy.controller", *_PROCESS},
    "server.py": {"kubernetes_asyncio", "prometheus_client", "aiohttp", "proxy.kube", "proxy.controller",
                  "proxy.admin", *_PROCESS},
}
# The base modules every layer may import: they import nothing of ours.
BASE_MODULES = ("objects.py", "settings.py")
# kubernetes_asyncio belongs only to the watch, status and cluster-client modules.
KUBE_CLIENT_ALLOWED = ("kube/watch.py", "kube/status.py", "kube/client.py", "kube/leader.py", "kube/events.py",
                       "kube/gateway_status.py", "kube/policy_status.py", "kube/listing.py")
PROMETHEUS_ALLOWED = ("metrics.py", "admin.py")

# Import cycles known today, each to be removed by the work named beside it. Only cycles that still exist
# may stay here (test_known_cycles_still_exist): when one is broken, delete its entry.
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _matches(name: str, banned: str) -> bool:
    return name == banned or name.startswith(banned + ".")


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", _sources(), ids=_rel)
def test_import_directions(path: Path) -> None:
    rel = _rel(path)
    imports = _imports(path)
    for scope, banned in FORBIDDEN.items():
        if rel == scope or rel.startswith(scope + "/"):
            bad = sorted(n for n in imports for b in banned if _matches(n, b))
            assert not bad, f"{rel} imports {bad}"
    if not rel.endswith(KUBE_CLIENT_ALLOWED):
        assert not [n for n in imports if _matches(n, "kubernetes_asyncio")], rel
    if not rel.endswith(PROMETHEUS_ALLOWED):
        assert not [n for n in imports if _matches(n, "prometheus_client")], rel


@pytest.mark.parametrize("rel", BASE_MODULES)
def test_base_modules_import_nothing_of_ours(rel: str) -> None:
    ours = sorted(n for n in _imports(ROOT / rel) if _matches(n, PACKAGE))
    assert not ours, f"{rel} imports {ours}: it is a base module every layer imports"


@pytest.mark.parametrize("path", _sources(), ids=_rel)
def test_no_relative_imports(path: Path) -> None:
    """Absolute imports only: every edge then names its target, and the checks above see all of them.

    A relative import (`from ..routing import x`) hides the layer it reaches from a reader and from the name
    matching above; resolving them would be possible, but nothing in proxy/ needs them.
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    relative = [f"{_rel(path)}:{node.lineno}" for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level > 0]
    assert not relative, f"relative imports (write proxy.<module>): {relative}"


# ---- import cycles between our modules


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: module level and inside functions, not under `if TYPE_CHECKING:`."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.orelse:
            yield from _runtime_imports(child)
        return
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    for child in ast.iter_child_nodes(node):
        yield from _runtime_imports(child)


def import_graph() -> dict[str, dict[str, int]]:
    """Our module -> {our module it imports: line of the first such import}."""
    modules = {_module_name(path): path for path in _sources()}
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for node in _runtime_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.module:
                # `from proxy.routing import build` imports the module proxy.routing.build if there is one
                targets = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target not in modules and "." in target:  # `import proxy.a.b` names proxy.a.b or its package
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[frozenset[str]]:
    """Tarjan's components with more than one module: each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def cycle_path(graph: dict[str, dict[str, int]], component: frozenset[str]) -> str:
    """One cycle through the component, each step with the line that imports: `a -> b (a.py:12) -> a (b.py:3)`."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node]):
            if target == start:
                steps = [*paths[node], start]
                return " -> ".join(
                    f"{b} ({a.replace('.', '/')}.py:{graph[a][b]})" if i else b
                    for i, (a, b) in enumerate(zip([steps[0], *steps], steps)))
            if target in component and target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle through {sorted(component)}")


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [cycle_path(graph, c) for c in strongly_connected(graph) if c not in KNOWN_CYCLES]
    assert not cycles, "import cycles between modules of proxy/:\n" + "\n".join(cycles)


def test_known_cycles_still_exist() -> None:
    present = set(strongly_connected(import_graph()))
    gone = [sorted(cycle) for cycle in KNOWN_CYCLES if cycle not in present]
    assert not gone, f"no longer a cycle, remove from KNOWN_CYCLES: {gone}"


def test_the_cycle_check_sees_cycles() -> None:
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}}
    assert strongly_connected(graph) == [frozenset({"a", "b", "c"})]
    assert cycle_path(graph, frozenset({"a", "b", "c"})) == "a -> b (a.py:1) -> c (b.py:2) -> a (c.py:3)"

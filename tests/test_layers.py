"""The import directions of ../shared/ARCHITECTURE.md, enforced by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "proxy"

# module folder or file -> top-level packages it must never import
FORBIDDEN = {
    "routing": {"aiohttp", "kubernetes_asyncio", "prometheus_client", "asyncio", "ssl", "socket", "uvloop", "httptools",
                "proxy.kube", "proxy.upstream", "proxy.server", "proxy.tls", "proxy.metrics", "proxy.admin", "proxy.cli"},
    "tls": {"aiohttp", "kubernetes_asyncio", "prometheus_client", "proxy.kube", "proxy.upstream", "proxy.server"},
    "upstream": {"kubernetes_asyncio", "prometheus_client", "proxy.kube", "proxy.server", "proxy.cli"},
    "settings.py": {"proxy.routing", "proxy.kube", "proxy.upstream", "proxy.tls"},
}
# kubernetes_asyncio belongs only to the watch, status and cluster-client modules.
KUBE_CLIENT_ALLOWED = ("kube/watch.py", "kube/status.py", "kube/client.py", "kube/leader.py", "kube/events.py")
PROMETHEUS_ALLOWED = ("metrics.py", "admin.py")


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


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_import_directions(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    imports = _imports(path)
    for scope, banned in FORBIDDEN.items():
        if rel == scope or rel.startswith(scope + "/"):
            bad = sorted(n for n in imports for b in banned if _matches(n, b))
            assert not bad, f"{rel} imports {bad}"
    if not rel.endswith(KUBE_CLIENT_ALLOWED):
        assert not [n for n in imports if _matches(n, "kubernetes_asyncio")], rel
    if not rel.endswith(PROMETHEUS_ALLOWED):
        assert not [n for n in imports if _matches(n, "prometheus_client")], rel

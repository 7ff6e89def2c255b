"""The API calls the code declares (each module's API_CALLS table), gathered for the RBAC checks."""

from __future__ import annotations

import importlib

from proxy.kube.client import ApiCall

# Every module that talks to the API server keeps its own API_CALLS table next to the calls.
MODULES = ("proxy.kube.client", "proxy.kube.discovery", "proxy.kube.watch", "proxy.kube.status", "proxy.kube.leader",
           "proxy.kube.events", "proxy.kube.gateway_status", "proxy.kube.policy_status")


def declared_api_calls() -> set[ApiCall]:
    calls: set[ApiCall] = set()
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue  # not written yet
            raise
        calls.update(module.API_CALLS)
    return calls


def undeclared(requests: list, calls: set[ApiCall] | None = None) -> list[str]:
    """Requests the emulator saw that no API_CALLS table declares (the RBAC would not allow them)."""
    allowed = {(c.group, c.resource, c.verb) for c in (calls if calls is not None else declared_api_calls())}
    return sorted({f"{r.verb} {r.resource}.{r.group or 'core'}" for r in requests
                   if (r.group, r.resource, r.verb) not in allowed})

"""ReferenceGrants: which cross-namespace references the owners of the target namespace allow.

Every grant lives in the namespace it opens; a reference from namespace A to an object in B is
allowed when a grant in B lists A's kind (from) and the object's kind, optionally its name (to).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.objects import Key, Warning
from proxy.routing.fields import Malformed, mapping, require_object, sequence, text

GATEWAY_GROUP = "gateway.networking.k8s.io"

# (from group, from kind, from namespace, to group, to kind, to name or "" for every name)
_Entry = tuple[str, str, str, str, str, str]


class Grants:
    """ReferenceGrants indexed by the namespace they open."""

    __slots__ = ("_by_namespace", "warnings")

    def __init__(self, grants: Mapping[Key, Any]) -> None:
        self._by_namespace: dict[str, list[_Entry]] = {}
        self.warnings: list[Warning] = []
        for (namespace, name), obj in sorted(grants.items()):
            try:
                entries = _entries(obj)
            except Malformed as error:
                self.warnings.append(Warning("ReferenceGrant", namespace, name, f"{error}; ignored"))
                continue
            if entries:
                self._by_namespace.setdefault(namespace, []).extend(entries)

    def permits(self, *, from_kind: str, from_namespace: str, to_kind: str, to_namespace: str, to_name: str,
                from_group: str = GATEWAY_GROUP, to_group: str = "") -> bool:
        """True when the reference stays in its namespace or a grant in the target namespace allows it."""
        if from_namespace == to_namespace:
            return True
        for entry in self._by_namespace.get(to_namespace, ()):
            f_group, f_kind, f_namespace, t_group, t_kind, t_name = entry
            if (f_group == from_group and f_kind == from_kind and f_namespace == from_namespace
                    and t_group == to_group and t_kind == to_kind and (not t_name or t_name == to_name)):
                return True
        return False


def _entries(obj: Any) -> list[_Entry]:
    spec = mapping(require_object(obj, "ReferenceGrant"), "spec", "")
    froms = []
    for index, item in enumerate(sequence(spec, "from", "spec.")):
        at = f"spec.from[{index}]."
        item = require_object(item, at[:-1])
        froms.append((_group(item, at), text(item, "kind", at, required=True),
                      text(item, "namespace", at, required=True)))
    entries: list[_Entry] = []
    for index, item in enumerate(sequence(spec, "to", "spec.")):
        at = f"spec.to[{index}]."
        item = require_object(item, at[:-1])
        to = (_group(item, at), text(item, "kind", at, required=True), text(item, "name", at))
        entries.extend((*source, *to) for source in froms)
    return entries


def _group(item: dict[str, Any], at: str) -> str:
    value = item.get("group")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{at}group must be a string")
    return value

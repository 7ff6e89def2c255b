"""Kubernetes label selectors (matchLabels and matchExpressions), for allowedRoutes.namespaces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.routing.fields import Malformed, mapping, require_object, sequence, text

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """Every requirement must hold; an empty selector selects everything (as in Kubernetes)."""

    labels: tuple[tuple[str, str], ...] = ()
    # (key, operator, values)
    expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        for key, value in self.labels:
            if labels.get(key) != value:
                return False
        for key, operator, values in self.expressions:
            present = key in labels
            if operator == "In":
                ok = present and labels[key] in values
            elif operator == "NotIn":
                ok = not present or labels[key] not in values
            elif operator == "Exists":
                ok = present
            else:
                ok = not present
            if not ok:
                return False
        return True


def parse_selector(obj: Any, where: str) -> LabelSelector:
    """A metav1.LabelSelector; raises Malformed for unknown operators or values of the wrong shape."""
    obj = require_object(obj, where)
    labels = []
    for key, value in mapping(obj, "matchLabels", f"{where}.").items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise Malformed(f"{where}.matchLabels must map strings to strings")
        labels.append((key, value))
    expressions = []
    for index, item in enumerate(sequence(obj, "matchExpressions", f"{where}.")):
        at = f"{where}.matchExpressions[{index}]"
        item = require_object(item, at)
        key = text(item, "key", f"{at}.", required=True)
        operator = text(item, "operator", f"{at}.", required=True)
        if operator not in _OPERATORS:
            raise Malformed(f"{at}.operator {operator!r} is not one of {', '.join(_OPERATORS)}")
        values = sequence(item, "values", f"{at}.")
        if not all(isinstance(v, str) for v in values):
            raise Malformed(f"{at}.values must be strings")
        if operator in ("In", "NotIn") and not values:
            raise Malformed(f"{at}.values must not be empty for {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise Malformed(f"{at}.values must be empty for {operator}")
        expressions.append((key, operator, frozenset(values)))
    return LabelSelector(tuple(sorted(labels)), tuple(expressions))


def namespace_labels(namespaces: Mapping[str, Any], name: str) -> dict[str, str]:
    """A namespace's labels, with the kubernetes.io/metadata.name label Kubernetes always sets (also
    when the Namespace object is not known, as in file mode)."""
    labels: dict[str, str] = {}
    obj = namespaces.get(name)
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        found = metadata.get("labels") if isinstance(metadata, dict) else None
        if isinstance(found, dict):
            labels.update((k, v) for k, v in found.items() if isinstance(k, str) and isinstance(v, str))
    labels["kubernetes.io/metadata.name"] = name
    return labels

"""Which GatewayClasses are ours: spec.controllerName equal to --gateway-controller-name.

Other controllers' classes (and their Gateways) are left alone without a word. A class of ours
is Accepted unless it asks for parameters: this implementation takes none, so any parametersRef
is InvalidParameters and its Gateways are not served.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from proxy.objects import Warning
from proxy.routing.fields import Malformed, mapping, require_object, text
from proxy.routing.gateway.features import SUPPORTED_FEATURES
from proxy.routing.gateway.meta import generation
from proxy.routing.gateway.status import ACCEPTED, ClassStatus, condition


@dataclass(frozen=True, slots=True)
class ClassEntry:
    name: str
    accepted: bool
    status: ClassStatus


def select_gateway_classes(classes: Mapping[str, Any], controller: str) -> tuple[dict[str, ClassEntry],
                                                                              list[Warning]]:
    """Our GatewayClasses by name (sorted), with their status; broken ones of ours are reported."""
    ours: dict[str, ClassEntry] = {}
    warnings: list[Warning] = []
    for name in sorted(classes):
        obj = classes[name]
        try:
            spec = mapping(require_object(obj, "GatewayClass"), "spec", "")
            if text(spec, "controllerName", "spec.") != controller:
                continue
        except Malformed:
            continue  # unreadable: not recognisably ours
        seen = generation(obj)
        if spec.get("parametersRef") is not None:
            message = "parametersRef is not supported: this controller takes no parameters"
            ok, reason = False, "InvalidParameters"
            warnings.append(Warning("GatewayClass", "", name, f"not accepted: {message}"))
        else:
            ok, reason, message = True, "Accepted", f"handled by {controller}"
        status = ClassStatus(name, (condition(ACCEPTED, ok, reason, message, seen),), SUPPORTED_FEATURES)
        ours[name] = ClassEntry(name, ok, status)
    return ours, warnings

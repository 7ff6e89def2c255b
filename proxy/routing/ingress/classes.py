"""Which Ingresses are ours: IngressClass selection, decided once per build.

Ingresses of other classes are silently left to their controllers; only our own
broken objects are worth a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from proxy.objects import Snapshot, Warning
from proxy.routing.fields import Malformed, mapping, require_object, text
from proxy.settings import Settings

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


@dataclass(frozen=True, slots=True)
class ClassSelection:
    """The class names we serve and whether Ingresses without any class are ours."""

    # `spec.ingressClassName` values we serve: ours by name, plus every IngressClass naming our controller.
    names: frozenset[str]
    # The legacy annotation value we serve (only looked at when ingressClassName is unset).
    annotation: str
    # Class-less Ingresses: ours when our IngressClass is the default or the setting says so.
    without_class: bool

    def serves(self, ingress: dict[str, Any]) -> bool:
        """True when this Ingress is ours; raises Malformed when its class fields are unreadable."""
        class_name = text(mapping(ingress, "spec", ""), "ingressClassName", "spec.")
        if class_name:
            return class_name in self.names
        annotations = mapping(mapping(ingress, "metadata", ""), "annotations", "metadata.")
        legacy = annotations.get(CLASS_ANNOTATION)
        if legacy is not None and legacy != "":
            return isinstance(legacy, str) and legacy == self.annotation
        return self.without_class


def select_classes(snapshot: Snapshot, settings: Settings) -> tuple[ClassSelection, list[Warning]]:
    """The ClassSelection for this snapshot; broken IngressClasses of ours are reported."""
    names = {settings.ingress_class}
    default = settings.watch_ingress_without_class
    warnings: list[Warning] = []
    for name in sorted(snapshot.ingress_classes):
        controller = ""
        try:
            obj = require_object(snapshot.ingress_classes[name], "IngressClass")
            controller = text(mapping(obj, "spec", ""), "controller", "spec.")
            if name != settings.ingress_class and controller != settings.controller_name:
                continue
            names.add(name)
            annotations = mapping(mapping(obj, "metadata", ""), "annotations", "metadata.")
            if annotations.get(DEFAULT_CLASS_ANNOTATION) == "true":
                default = True
        except Malformed as error:
            # Another controller's broken class is not ours to report.
            if name == settings.ingress_class or controller == settings.controller_name:
                warnings.append(Warning("IngressClass", "", name, f"{error}; ignored"))
    selection = ClassSelection(names=frozenset(names), annotation=settings.ingress_class, without_class=default)
    return selection, warnings

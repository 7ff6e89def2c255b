"""The migration report: every ingress-nginx annotation and ConfigMap key in use, with its fate in pyngress.

Pure: Ingress objects and a ConfigMap's data in, a `Report` out. An annotation's fate comes from the same
registry the builder uses (`routing.ingress.annotations`), so a value the builder would refuse is reported as
a bad value here, and the catalogue (`annotations_table`, generated from docs/ingress-nginx.md) says what the
documentation says about the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy.migrate.annotations_table import ROWS
from proxy.routing.global_config import DIFFERENCES, PENDING, READERS
from proxy.routing.global_config import FLAG_EQUIVALENTS as CONFIGMAP_FLAGS
from proxy.routing.ingress.annotations import PREFIXES, REFUSED, REGISTRY, annotations_of, parse_annotations
from proxy.routing.ingress.annotations.values import Invalid
from proxy.routing.ingress.configmap_keys import KEYS as CONFIGMAP_KEYS

# Fates, from best to worst. The last four change what clients see after the switch.
SUPPORTED = "supported"
UNKNOWN = "unknown"
DIFFERENT = "supported with a difference"
FLAG = "use a flag"
NOT_YET = "not yet"
REFUSED_FATE = "refused"
BAD_VALUE = "bad value"
FATES = (SUPPORTED, UNKNOWN, DIFFERENT, FLAG, NOT_YET, REFUSED_FATE, BAD_VALUE)
CHANGES_BEHAVIOUR = frozenset({DIFFERENT, FLAG, NOT_YET, REFUSED_FATE, BAD_VALUE})

_TABLE: dict[str, tuple[str, str]] = {name: (status, note) for name, status, note in ROWS}
_HONOURED = frozenset(module.NAME for module in REGISTRY)
# Every spelling of an honoured annotation -> its docs row (allowlist-source-range -> whitelist-source-range).
_ROW_OF = {spelling: module.NAME for module in REGISTRY for spelling in getattr(module, "SPELLINGS", (module.NAME,))}



@dataclass(frozen=True, slots=True)
class Item:
    """One annotation (or ConfigMap key) as written, and what pyngress does with it."""

    key: str
    value: str
    fate: str
    note: str = ""

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "value": self.value, "fate": self.fate, "note": self.note}


@dataclass(frozen=True, slots=True)
class IngressReport:
    namespace: str
    name: str
    ingress_class: str
    items: tuple[Item, ...]

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "class": self.ingress_class,
                "annotations": [item.to_json() for item in self.items]}


@dataclass(frozen=True, slots=True)
class ConfigMapReport:
    namespace: str
    name: str
    items: tuple[Item, ...]
    found: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "found": self.found,
                "keys": [item.to_json() for item in self.items]}


@dataclass(frozen=True, slots=True)
class Report:
    ingresses: tuple[IngressReport, ...]
    configmap: ConfigMapReport | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def changes_behaviour(self) -> bool:
        return any(self.counts.get(fate, 0) for fate in CHANGES_BEHAVIOUR)

    def to_json(self) -> dict[str, Any]:
        return {"summary": {"ingresses": len(self.ingresses), **{fate: self.counts.get(fate, 0) for fate in FATES},
                            "changesBehaviour": self.changes_behaviour},
                "ingresses": [ingress.to_json() for ingress in self.ingresses],
                "configmap": self.configmap.to_json() if self.configmap is not None else None}


def make_report(ingresses: Iterable[Mapping[str, Any]], configmap: tuple[str, str, Mapping[str, Any] | None] | None
                ) -> Report:
    """The report over `ingresses` and, when named, the ConfigMap (namespace, name, its data or None if absent)."""
    reports = sorted((ingress_report(obj) for obj in ingresses), key=lambda r: (r.namespace, r.name))
    config = configmap_report(*configmap) if configmap is not None else None
    counts: Counter[str] = Counter()
    for report in reports:
        counts.update(item.fate for item in report.items)
    if config is not None:
        counts.update(item.fate for item in config.items)
    return Report(tuple(reports), config, dict(counts))


def ingress_report(obj: Mapping[str, Any]) -> IngressReport:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    annotations = annotations_of(obj)
    ours = {key: value for key, value in annotations.items() if _short(key) is not None}
    items = tuple(annotation_fate(key, value, ours) for key, value in sorted(ours.items()))
    return IngressReport(str(meta.get("namespace") or "default"), str(meta.get("name") or ""), _class_of(obj), items)


def annotation_fate(key: str, value: Any, annotations: Mapping[str, Any]) -> Item:
    """What pyngress does with annotation `key` (under one of its prefixes) on an Ingress carrying `annotations`."""
    name = _short(key)
    assert name is not None
    text = value if isinstance(value, str) else repr(value)
    status, note = _TABLE.get(_ROW_OF.get(name, name), ("", ""))
    if name in REFUSED:
        return Item(key, text, REFUSED_FATE, note or "raw nginx configuration is not supported, on purpose")
    if name in _ROW_OF:
        if key.startswith(PREFIXES[1]) and PREFIXES[0] + name in annotations:
            return Item(key, text, SUPPORTED, f"{PREFIXES[0]}{name} is set too and wins")
        _, problems = parse_annotations({key: value})
        if problems:
            return Item(key, text, BAD_VALUE, "; ".join(problems))
        if status == DIFFERENT:
            return Item(key, text, DIFFERENT, note)
        return Item(key, text, SUPPORTED, note)
    if name in _TABLE:
        return Item(key, text, NOT_YET, note or "not supported yet: ignored, with a warning on the Ingress")
    return Item(key, text, UNKNOWN, "not an ingress-nginx annotation: ignored (as ingress-nginx would)")


def configmap_report(namespace: str, name: str, data: Mapping[str, Any] | None) -> ConfigMapReport:
    """Each key with its fate, judged by the reader the running proxy uses (routing.global_config)."""
    if data is None:
        return ConfigMapReport(namespace, name, (), found=False)
    items = []
    for key, value in sorted(data.items()):
        text = value if isinstance(value, str) else repr(value)
        items.append(_configmap_item(key, text, value))
    return ConfigMapReport(namespace, name, tuple(items))


def _configmap_item(key: str, text: str, value: Any) -> Item:
    reader = READERS.get(key)
    if reader is not None:
        try:
            if not isinstance(value, str):
                raise Invalid(f"must be a string, got {value!r:.60}")
            reader(value)
        except Invalid as error:
            return Item(key, text, BAD_VALUE, f"{error}; the default is used")
        if key in PENDING:
            return Item(key, text, NOT_YET, f"read and validated, not applied yet: {PENDING[key]}")
        if key in DIFFERENCES:
            return Item(key, text, DIFFERENT, DIFFERENCES[key])
        return Item(key, text, SUPPORTED, "")
    flag = CONFIGMAP_FLAGS.get(key)
    if flag is not None:
        return Item(key, text, FLAG, f"not read from the ConfigMap; the flag {flag} does this")
    if key in CONFIGMAP_KEYS:
        return Item(key, text, NOT_YET, "not read by pyngress; ignored")
    return Item(key, text, UNKNOWN, "not an ingress-nginx ConfigMap key")


def _short(key: str) -> str | None:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return None


def _class_of(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec")
    name = spec.get("ingressClassName") if isinstance(spec, dict) else None
    if isinstance(name, str) and name:
        return name
    legacy = annotations_of(obj).get("kubernetes.io/ingress.class")
    return legacy if isinstance(legacy, str) else ""


def format_text(report: Report) -> str:
    """The human form: the summary first, then each Ingress and the ConfigMap, worst fates marked with `!`."""
    counts = report.counts
    lines = [f"{len(report.ingresses)} Ingresses; annotations and ConfigMap keys: "
             + ", ".join(f"{counts.get(fate, 0)} {fate}" for fate in FATES),
             "verdict: " + ("behaviour would change after the switch (the lines marked !)" if report.changes_behaviour
                            else "nothing in use would change behaviour"),
             ""]
    for ingress in report.ingresses:
        if not ingress.items:
            continue
        lines.append(f"Ingress {ingress.namespace}/{ingress.name}"
                     + (f" (class {ingress.ingress_class})" if ingress.ingress_class else ""))
        lines.extend(_item_line(item) for item in ingress.items)
    plain = sum(1 for ingress in report.ingresses if not ingress.items)
    if plain:
        lines.append(f"{plain} Ingresses without ingress-nginx annotations: nothing to check")
    config = report.configmap
    if config is not None:
        if not config.found:
            lines.append(f"ConfigMap {config.namespace}/{config.name}: not found")
        else:
            lines.append(f"ConfigMap {config.namespace}/{config.name}")
            lines.extend(_item_line(item) for item in config.items)
    return "\n".join(lines) + "\n"


def _item_line(item: Item) -> str:
    mark = "!" if item.fate in CHANGES_BEHAVIOUR else " "
    value = item.value if len(item.value) <= 60 else item.value[:57] + "..."
    note = f": {item.note}" if item.note else ""
    return f"  {mark} {item.key}={value!r}  [{item.fate}]{note}"

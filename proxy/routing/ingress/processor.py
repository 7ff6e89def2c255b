"""The Ingress front end: one Ingress object → what it brings to each host it names.

`IngressEntry` is the unit both builders work with: the plain `build()` makes one per Ingress and
throws them away, the incremental `Builder` keeps one per Ingress dict and reuses its parse while
the snapshot holds the identical dict. Whether the Ingress is ours depends on the class selection
(judged again when the selection changes); its parse does not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from proxy.objects import Key, KubeObject, Warning
from proxy.routing.clusters import cluster_key
from proxy.routing.fields import Malformed, require_object
from proxy.routing.filters import HTTPS_REDIRECT, https_redirect
from proxy.routing.global_config import GlobalConfig
from proxy.routing.ingress.annotations import DEFAULTS, annotations_of, parse_annotations
from proxy.routing.ingress.classes import ClassSelection
from proxy.routing.ingress.nginx import NginxFeatures, extra_hosts, features_of
from proxy.routing.ingress.parse import IngressRules, age, parse_ingress
from proxy.routing.ingress.secrets import SecretReader
from proxy.routing.ingress.tls import tls_host_names
from proxy.routing.merge import PathEntry

_NO_NAMES: frozenset[str] = frozenset()
# Hosts of one Ingress kept in a tuple up to this many, indexed in a dict beyond.
_FEW = 8
NEVER = math.inf  # the age of an Ingress without a readable creationTimestamp: after every other


class IngressEntry:
    """One Ingress dict: its age, whether it is ours (per class selection), and once parsed, what it
    brings to each host it names, ready to merge (see routing.merge.IngressPaths)."""

    __slots__ = ("key", "obj", "age", "selection", "served", "problem", "parsed", "warnings", "tls",
                 "paths", "by_host", "default", "has_hosts", "redirect", "force_redirect", "https_redirect", "nginx",
                 "tracing", "passthrough", "secrets", "config_maps")

    def __init__(self, key: Key, obj: Any) -> None:
        self.key = key
        self.obj = obj  # held so its id() cannot be reused while it is remembered
        # Merging goes oldest first, then by (namespace, name). A float, not age()'s tuple: one object less.
        unreadable, stamp = age(obj)
        self.age = NEVER if unreadable else stamp
        self.selection: ClassSelection | None = None
        self.served = False
        self.problem: Warning | None = None  # unreadable class fields
        self.parsed = False
        self.warnings: tuple[Warning, ...] = ()  # of the parse
        self.tls: frozenset[str] | None = None
        # (rule host, its paths in written order) for every host it names (a claim, even without paths);
        # "" holds the host-less paths and the catch-all. None: the Ingress adds nothing. Tuples of
        # strings, which the collector stops tracking (there is one per Ingress; dicts stay tracked).
        self.paths: tuple[tuple[str, tuple[PathEntry, ...]], ...] | None = None
        self.by_host: dict[str, tuple[PathEntry, ...]] | None = None  # the same, indexed, when many
        self.default: str | None = None  # cluster key of spec.defaultBackend
        self.has_hosts = False
        self.redirect = True
        self.force_redirect = False
        self.https_redirect = HTTPS_REDIRECT  # the filters of its redirected routes (preserve-trailing-slash's)
        # The other ingress-nginx annotations, compiled (routing.ingress.nginx); None: the Ingress uses none.
        self.nginx: NginxFeatures | None = None
        self.tracing: bool | None = None  # enable-opentelemetry
        self.passthrough = False  # ssl-passthrough
        # The Secrets its annotations read (present or not): a change of one of them means parsing again.
        self.secrets: frozenset[Key] = frozenset()
        self.config_maps: frozenset[Key] = frozenset()  # the same, for ConfigMaps (custom-headers...)

    def judge(self, selection: ClassSelection) -> None:
        """Decide whether `selection` serves this Ingress (the parse is kept: it does not depend on it)."""
        self.selection = selection
        self.problem = None
        try:
            self.served = selection.serves(require_object(self.obj, "Ingress"))
        except Malformed as error:
            self.served = False
            self.problem = Warning("Ingress", self.key[0], self.key[1], f"{error}; Ingress skipped")

    def parse(self, host_checks: dict[str, tuple[str, str]], secrets: Mapping[Key, KubeObject] | None = None,
              config: GlobalConfig | None = None, config_maps: Mapping[Key, KubeObject] | None = None) -> None:
        """Validate the Ingress and index its paths by host; `host_checks` memoizes host validation;
        `secrets`: the snapshot's Secrets, read by annotations (auth-secret, proxy-ssl-secret); `config`: the
        global configuration (its global forms are the annotations' defaults)."""
        self.parsed = True
        namespace, name = self.key
        problems: list[Warning] = []
        try:
            rules, problems = parse_ingress(self.obj, namespace=namespace, name=name, hosts=host_checks)
            defaults = config.annotation_defaults(DEFAULTS) if config is not None else DEFAULTS
            annotations, messages = parse_annotations(annotations_of(self.obj), defaults=defaults)
            problems.extend(Warning("Ingress", namespace, name, message) for message in messages)
            self.redirect = annotations.ssl_redirect
            self.force_redirect = annotations.force_ssl_redirect
            self.https_redirect = https_redirect(
                keep_slash=annotations.preserve_trailing_slash,
                status=config.http_redirect_code if config is not None else 308,
                port=(config.https_redirect_port if config is not None else 443)
                if annotations.use_port_in_redirects else 0)
            self.tracing = annotations.enable_opentelemetry
            self.passthrough = annotations.ssl_passthrough
            if annotations is not DEFAULTS or (config is not None and (config.global_auth or config.default_backend
                                                                        or config.upstream_headers)):
                reader = SecretReader(secrets if secrets is not None else {}, namespace, config_maps)
                self.nginx, messages = features_of(annotations, zone=f"{namespace}/{name}", hosts=rules.hosts,
                                                   secrets=reader, config=config)
                self.secrets = frozenset(reader.read)
                self.config_maps = frozenset(reader.read_config_maps)
                problems.extend(Warning("Ingress", namespace, name, message) for message in messages)
            self._index(rules, extra_hosts(annotations, rules.hosts))
        except Exception as error:  # noqa: BLE001  (a bug must cost one Ingress, never the whole table)
            self.paths = None
            problems = [*problems, Warning("Ingress", namespace, name, f"skipped: {type(error).__name__}: {error}")]
        self.warnings = tuple(problems)

    def _index(self, rules: IngressRules, extra: tuple[tuple[str, str], ...] = ()) -> None:
        namespace = rules.namespace
        paths: dict[str, list[PathEntry]] = {host: [] for host in rules.hosts}
        for rule in rules.paths:
            backend = rule.backend
            entry = (rule.path, rule.path_type, rule.key, cluster_key(namespace, backend.service, backend.port))
            group = paths.get(rule.host)
            if group is None:
                group = paths[rule.host] = []
            group.append(entry)
        for alias, host in extra:  # server-alias, from-to-www-redirect: another name for a rule host's paths
            paths[alias] = list(paths.get(host, ()))
        if rules.default is not None:
            self.default = cluster_key(namespace, rules.default.service, rules.default.port)
            paths.setdefault("", [])  # the catch-all lives with the host-less rules
        self.paths = tuple((host, tuple(entries)) for host, entries in paths.items())
        if len(paths) > _FEW:
            self.by_host = dict(self.paths)
        self.has_hosts = bool(rules.hosts)

    def paths_for(self, host: str) -> tuple[PathEntry, ...]:
        """The paths this Ingress gives `host` (which it names)."""
        if self.by_host is not None:
            return self.by_host[host]
        assert self.paths is not None
        for named, entries in self.paths:
            if named == host:
                return entries
        raise KeyError(host)

    def hosts(self) -> tuple[str, ...]:
        """The rule hosts it contributes to ("" for host-less paths and the catch-all)."""
        return tuple(host for host, _ in self.paths) if self.paths is not None else ()

    def tls_hosts(self) -> frozenset[str]:
        """The host names its spec.tls lists (they decide which hosts redirect plain HTTP)."""
        if self.tls is None:
            try:
                self.tls = frozenset(tls_host_names(self.obj)) or _NO_NAMES
            except Exception:  # noqa: BLE001  (never seen: tls_host_names checks every type it reads)
                self.tls = _NO_NAMES
        return self.tls


def by_age(entry: IngressEntry) -> tuple[float, Key]:
    """Merge order: oldest first, then (namespace, name)."""
    return (entry.age, entry.key)

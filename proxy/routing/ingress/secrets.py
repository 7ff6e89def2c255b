"""The Secrets an Ingress's annotations read (auth-secret, proxy-ssl-secret), from the build's snapshot, and
the ConfigMaps (custom-headers, auth-proxy-set-headers).

A `SecretReader` is made per Ingress parse; it remembers every Secret it was asked for, present or not,
so the incremental builder parses the Ingress again when one of them changes (routing.incremental).
Names follow proxy.references (the cache holds exactly these Secrets' data): "name" is in the Ingress's
namespace, "namespace/name" must be in it too (ingress-nginx refuses cross-namespace Secrets by default).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from proxy.objects import Key, KubeObject
from proxy.references import secret_key


class SecretReader:
    """Reads Secrets of one Ingress's namespace out of a snapshot's `secrets` mapping."""

    __slots__ = ("secrets", "namespace", "read", "config_maps", "read_config_maps")

    def __init__(self, secrets: Mapping[Key, KubeObject], namespace: str,
                 config_maps: Mapping[Key, KubeObject] | None = None) -> None:
        self.secrets = secrets
        self.namespace = namespace
        self.read: set[Key] = set()
        self.config_maps: Mapping[Key, KubeObject] = config_maps if config_maps is not None else {}
        self.read_config_maps: set[Key] = set()

    def config_map(self, ref: str) -> tuple[dict[str, str] | None, str]:
        """The data of the ConfigMap `ref` names, or None and why not (a message naming the ConfigMap)."""
        key = secret_key(ref, self.namespace)
        if key is None:
            return None, f"{ref!r:.80} is not name or namespace/name"
        if key[0] != self.namespace:
            return None, (f"ConfigMap {key[0]}/{key[1]} is in another namespace than the Ingress (cross-namespace "
                          "resources are refused, as ingress-nginx does by default)")
        self.read_config_maps.add(key)
        found = self.config_maps.get(key)
        if found is None:
            return None, f"ConfigMap {key[0]}/{key[1]} not found"
        raw = found.get("data")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
            return None, f"ConfigMap {key[0]}/{key[1]}: data is not a mapping of strings"
        return dict(raw), ""

    def data(self, ref: str) -> tuple[dict[str, bytes] | None, str]:
        """The decoded data of the Secret `ref` names, or None and why not (a message naming the Secret)."""
        key = secret_key(ref, self.namespace)
        if key is None:
            return None, f"{ref!r:.80} is not name or namespace/name"
        if key[0] != self.namespace:
            return None, (f"Secret {key[0]}/{key[1]} is in another namespace than the Ingress (cross-namespace "
                          "Secrets are refused, as ingress-nginx does by default)")
        self.read.add(key)
        secret = self.secrets.get(key)
        if secret is None:
            return None, f"Secret {key[0]}/{key[1]} not found"
        raw = secret.get("data")
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            return None, f"Secret {key[0]}/{key[1]}: data is not a mapping"
        decoded: dict[str, bytes] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not isinstance(value, str):
                return None, f"Secret {key[0]}/{key[1]}: data is not a mapping of strings"
            try:
                decoded[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return None, f"Secret {key[0]}/{key[1]}: key {name!r:.40} is not base64"
        return decoded, ""


__all__ = ["SecretReader"]

"""ingress-nginx's regex hosts: once one Ingress of a host sets `use-regex`, or a `rewrite-target`
that differs from its path, every path of that host (of every Ingress) is matched the way nginx
matches a `location ~* "^<path>"` (docs/user-guide/ingress-path-matching.md, "IMPORTANT NOTES"):

- case-insensitive, from the start of the request path, with nothing required after it: a Prefix
  "/foo" matches "/foobar", and an Exact path is a prefix too (the `=` modifier is lost);
- a Prefix path without rewrite or use-regex becomes "<path>/" plus "<path>" (ingress-nginx adds the
  second as an exact location unless an Exact path of that text exists; under `~*` both are regexes);
- the first match wins, in ingress-nginx's order: longer paths first (its stable sort by length after
  a descending sort of the text; the extra locations of a Prefix path then sit next to it), so a
  regex can beat a longer literal path, as the documentation's "Warning" example shows.

The host's defaultBackend still catches what no path matches. Compiled once per host merge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from proxy.objects import Warning
from proxy.routing.ingress.nginx import path_pattern
from proxy.routing.model import PATH_EXACT, PATH_PREFIX, Route
from proxy.routing.table import Slot, VirtualHost, slot_routes


def to_regex_host(routes: VirtualHost, slots: Iterable[Slot], *, literal: Callable[[Route], bool]) -> list[Warning]:
    """Make `slots` (one per Ingress path as written and pathType; a canary's rules share one) the host's
    regex locations, in nginx's order; the host keeps no Exact or Prefix slots.

    `literal(route)`: the route's path gets ingress-nginx's extra exact location (a Prefix path of an
    Ingress without use-regex and without a rewrite of that path). Paths that do not compile are warned
    about (on their Ingress) and matched as text."""
    ordered = sorted(slots, key=lambda slot: slot_routes(slot)[0].path, reverse=True)
    ordered.sort(key=lambda slot: len(slot_routes(slot)[0].path), reverse=True)  # stable: text order within a length
    exact_texts = {slot_routes(slot)[0].path for slot in ordered if slot_routes(slot)[0].path_type == PATH_EXACT}
    locations: list[tuple[str, Slot]] = []
    for slot in ordered:  # ingress-nginx adds its extra locations after sorting, each next to its own
        first = slot_routes(slot)[0]
        path = first.path
        if first.path_type == PATH_PREFIX and path != "/" and literal(first):
            locations.append((path if path.endswith("/") else path + "/", slot))
            if path not in exact_texts:
                locations.append((path, slot))
        else:
            locations.append((path, slot))
    warnings: list[Warning] = []
    compiled: list[tuple[re.Pattern[str], Slot]] = []
    warned: set[str] = set()
    for path, slot in locations:
        pattern, problem = path_pattern(path, anchored=True)
        if problem and path not in warned:
            warned.add(path)
            route = slot_routes(slot)[0]
            warnings.append(Warning("Ingress", route.namespace, route.ingress,
                                    f"{problem} (host {route.host or '*'} matches paths as regexes)"))
        compiled.append((pattern, slot))
    routes.exact = {}
    routes.prefix = {}
    routes.regex = tuple(compiled)
    return warnings


__all__ = ["to_regex_host"]

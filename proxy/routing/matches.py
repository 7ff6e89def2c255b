"""Conditions a rule adds to its path: method, headers, query parameters (all must hold).

Compiled at build time: names lower-cased to bytes, regexes compiled. They are checked only for
rules that have them; a plain path rule has `conditions` None and never reaches this module.
Regular expressions must match the whole value (as Envoy's safe_regex does), except where a
front end asks for a search (ingress-nginx's `canary-by-header-pattern` is an unanchored PCRE match).
Cookie conditions (ingress-nginx's `canary-by-cookie`) read one cookie of the Cookie header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.routing.request import Request

MATCH_EXACT = "Exact"
MATCH_REGEX = "RegularExpression"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """A header condition: the name is case-insensitive, the value case-sensitive."""

    name: bytes  # lower-case
    value: bytes = b""
    pattern: re.Pattern[bytes] | None = None  # set for RegularExpression
    # True for a condition that holds when the header is absent or different (canary "never" and the like).
    invert: bool = False
    # True: the pattern may match anywhere in the value (re.search), not the whole value.
    search: bool = False

    def matches(self, request: Request) -> bool:
        found = request.header(self.name)
        if found is None:
            ok = False
        elif self.pattern is not None:
            ok = (self.pattern.search(found) if self.search else self.pattern.fullmatch(found)) is not None
        else:
            ok = found == self.value
        return ok is not self.invert


@dataclass(frozen=True, slots=True)
class CookieMatch:
    """A cookie condition: the first cookie named `name` has exactly `value` (names compared without
    case and ";" or "," separating cookies, as nginx's $cookie_NAME reads them). No such cookie: no match."""

    name: bytes  # lower-case
    value: bytes
    prefix: bool = False  # the value starts with `value` (an affinity cookie naming a pod of one Service)

    def matches(self, request: Request) -> bool:
        raw = request.header(b"cookie")
        if raw is None:
            return False
        name = self.name
        for pair in raw.replace(b",", b";").split(b";"):
            key, sep, found = pair.partition(b"=")
            if sep and key.strip().lower() == name:
                return found.strip().startswith(self.value) if self.prefix else found.strip() == self.value
        return False


@dataclass(frozen=True, slots=True)
class QueryMatch:
    """A query parameter condition: name and value are case-sensitive; values are percent-decoded."""

    name: str
    value: str = ""
    pattern: re.Pattern[str] | None = None

    def matches(self, request: Request) -> bool:
        found = request.query_value(self.name)
        if found is None:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(found) is not None
        return found == self.value


@dataclass(frozen=True, slots=True)
class Conditions:
    """Everything a rule requires besides its path."""

    method: bytes | None = None
    headers: tuple[HeaderMatch, ...] = ()
    query: tuple[QueryMatch, ...] = ()
    cookies: tuple[CookieMatch, ...] = ()

    def matches(self, request: Request) -> bool:
        # Plain loops, not all(): this runs per request for conditional rules, and a generator costs more.
        if self.method is not None and request.method != self.method:
            return False
        for header in self.headers:
            if not header.matches(request):
                return False
        for param in self.query:
            if not param.matches(request):
                return False
        for cookie in self.cookies:  # noqa: SIM110
            if not cookie.matches(request):
                return False
        return True

    @property
    def specificity(self) -> tuple[int, int, int]:
        """The Gateway API's tie-breakers after the path: a method, then more headers, then more query params."""
        return (self.method is not None, len(self.headers), len(self.query))

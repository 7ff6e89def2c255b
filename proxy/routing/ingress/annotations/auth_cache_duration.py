"""`auth-cache-duration`: comma-separated nginx `proxy_cache_valid` entries, status codes then a duration
(`200 202 10m, 401 5m`); default `200 202 401 5m`. An invalid entry fails closed (ingress-nginx rejects
the auth configuration)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-cache-duration"
DEFAULT = ("200 202 401 5m",)
DISABLED = "every route of the Ingress answers 503 (fail closed: ingress-nginx rejects the auth configuration)"
_CODE = re.compile(r"[0-9]{3}")
DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w|M|y)")


def parse(value: str) -> tuple[str, ...]:
    entries = tuple(entry for part in value.split(",") if (entry := part.strip()))
    for entry in entries:
        seen_duration = False
        for word in entry.split(" "):
            if not word:
                continue
            if _CODE.fullmatch(word):
                if seen_duration:
                    raise Invalid(f"{entry!r:.60}: a status code after the duration")
            elif DURATION.fullmatch(word):
                seen_duration = True
            else:
                raise Invalid(f"{entry!r:.60}: {word!r:.20} is neither a status code nor a duration")
        if not seen_duration:
            raise Invalid(f"{entry!r:.60} has no duration")
    return entries or DEFAULT

"""`cors-allow-origin`: the origins allowed, comma-separated (default "*"): scheme://host[:port], with
"*." for one label of the host, "null", or "*" (which wins over any other entry).

Entries are kept as written; the translator (routing.ingress.security) skips, with a warning, those
that are not origins, as ingress-nginx skips them. A blank value is "*" (ingress-nginx's default).
"""

import re

NAME = "cors-allow-origin"
DEFAULT = ("*",)
# ingress-nginx's corsOriginRegex, one entry.
ENTRY = re.compile(r"[a-z]+://(\*\.)?[A-Za-z0-9\-.]*(:\d+)?|\*|null")


def parse(value: str) -> tuple[str, ...]:
    origins = tuple(origin for entry in value.split(",") if (origin := entry.strip()))
    if not origins or "*" in origins:
        return DEFAULT
    return origins

"""`rewrite-target`: the path sent upstream, with `$1`.. from the rule path's regex groups (default: none).

Its presence also makes every path of the host a case-insensitive regex (see routing.ingress.regex_paths).
"""

from proxy.routing.ingress.annotations.values import PATH_WITH_CAPTURE, matching

NAME = "rewrite-target"
DEFAULT = ""
DISABLED = "no rewrite"


def parse(value: str) -> str:
    return matching(value, PATH_WITH_CAPTURE, "a path (letters, digits, -._~/: and $1-style groups)")

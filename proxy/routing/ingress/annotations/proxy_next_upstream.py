"""`proxy-next-upstream`: when a request goes on to the next pod (nginx's proxy_next_upstream words;
ingress-nginx's default "error timeout"). Kept as the list of words; see routing.ingress.nginx_traffic."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "proxy-next-upstream"
DEFAULT: tuple[str, ...] = ()  # not set
DISABLED = "ingress-nginx's default \"error timeout\" used"

# ingress-nginx's validUpstreamAnnotation.
_VALID = re.compile(r"((error|timeout|invalid_header|http_500|http_502|http_503|http_504|http_403|http_404|"
                    r"http_429|non_idempotent|off)\s?)+")


def parse(value: str) -> tuple[str, ...]:
    if _VALID.fullmatch(value) is None:
        raise Invalid(f"{value!r:.80} is not a list of error, timeout, invalid_header, http_500, http_502, "
                      "http_503, http_504, http_403, http_404, http_429, non_idempotent or off")
    return tuple(dict.fromkeys(value.split()))

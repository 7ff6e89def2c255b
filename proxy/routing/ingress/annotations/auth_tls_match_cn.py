"""`auth-tls-match-cn`: "CN=<regex>", searched in the client certificate's subject DN (nginx's
`$ssl_client_s_dn !~ "CN=..."`); no match: 403. A value without "CN=" or whose regex does not compile makes
the Ingress's routes answer 503 (fail closed: ingress-nginx rejects the whole auth-tls configuration)."""

import re

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-tls-match-cn"
DEFAULT = ""
DISABLED = "the Ingress's routes answer 503 until it is fixed (fail closed)"


def parse(value: str) -> str:
    if not value.startswith("CN="):
        raise Invalid(f"{value!r:.80} does not start with 'CN='")
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError) as error:
        raise Invalid(f"{value!r:.80} is not a valid regular expression ({error})") from None
    return value

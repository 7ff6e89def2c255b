"""`auth-tls-verify-client`: nginx's ssl_verify_client: "on" (a certificate is required), "off" (none is asked),
"optional", or "optional_no_ca" (a certificate the CA does not vouch for is forwarded, not refused)."""

from proxy.routing.ingress.annotations.values import Invalid

NAME = "auth-tls-verify-client"
DEFAULT = "on"
OPTIONS = ("on", "off", "optional", "optional_no_ca")


def parse(value: str) -> str:
    if value not in OPTIONS:  # ingress-nginx's authVerifyClientRegex: exact, lower-case
        raise Invalid(f"{value!r:.40} is not one of {', '.join(OPTIONS)}")
    return value

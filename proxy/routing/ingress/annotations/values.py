"""Value readers shared by the annotation parsers (ingress-nginx's parser helpers)."""

from __future__ import annotations

import re

from proxy.references import secret_key
from proxy.routing.access import parse_networks


class Invalid(ValueError):
    """An annotation value that cannot be used; the message says what was expected."""


def boolean(value: str) -> bool:
    """"true" or "false", any case, surrounding blanks ignored (as ingress-nginx's GetBoolAnnotation)."""
    lowered = value.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise Invalid(f'{value!r} is not "true" or "false"')


# The character classes of ingress-nginx's annotation validators (internal/ingress/annotations/parser).
_ALNUM = r"\-._~a-zA-Z0-9/:"
# RegexPathWithCapture: a path that may hold "$1"-style references (rewrite-target, app-root).
PATH_WITH_CAPTURE = re.compile(rf"/?[{_ALNUM}$]*")
# URLIsValidRegex: a URL with a query string (permanent-redirect, temporal-redirect).
URL_CHARS = re.compile(rf"[{_ALNUM},?&=]*")
# BasicCharsRegex: header and cookie names and values of the canary annotations.
BASIC_CHARS = re.compile(rf"[{_ALNUM}]*")
# IsValidRegex: what a regex annotation may hold.
REGEX_CHARS = re.compile(rf"[{_ALNUM}^$\[\](){{}}*+?|&=\\]*")


def matching(value: str, pattern: re.Pattern[str], what: str) -> str:
    """`value` when every character is one ingress-nginx's validator allows, else Invalid."""
    if pattern.fullmatch(value) is None:
        raise Invalid(f"{value!r:.80} is not {what}")
    return value


def configmap_reference(value: str) -> str:
    """A ConfigMap an annotation names: "name" (in the Ingress's namespace) or "namespace/name"."""
    text = matching(value.strip(), BASIC_CHARS, "a ConfigMap name or namespace/name")
    if secret_key(text, "-") is None:
        raise Invalid(f"{value!r:.80} is not name or namespace/name")
    return text


def integer(value: str) -> int:
    """A decimal integer, optionally signed (Go's strconv.Atoi)."""
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text):
        raise Invalid(f"{value!r:.40} is not an integer")
    return int(text)


def not_negative(value: str) -> int:
    """A decimal integer of 0 or more."""
    number = integer(value)
    if number < 0:
        raise Invalid(f"{value!r:.40} is negative")
    return number


def http_url(value: str) -> str:
    """An http(s) URL made of the characters ingress-nginx allows in redirect URLs."""
    matching(value, URL_CHARS, "a URL (letters, digits and -._~/:,?&=)")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest:
        raise Invalid(f"{value!r:.80} is not an http or https URL")
    return value


# URLWithNginxVariableRegex: a URL that may hold nginx variables (auth-url, auth-signin).
URL_WITH_VARIABLES = re.compile(rf"[{_ALNUM}, ,?&=$]*")


def auth_url(value: str) -> str:
    """An http(s) URL that may hold nginx variables, as ingress-nginx's URLWithNginxVariableRegex and
    StringToURL accept it: a scheme, a host, no ".." in the host."""
    matching(value, URL_WITH_VARIABLES, "a URL (letters, digits, nginx variables and -._~/:,?&= or blanks)")
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise Invalid(f"{value!r:.80} is not an http or https URL")
    host = re.split(r"[/?]", rest, maxsplit=1)[0]
    if not host:
        raise Invalid(f"{value!r:.80}: url host is empty")
    if ".." in host:
        raise Invalid(f"{value!r:.80}: invalid url host")
    return value


def networks(value: str) -> tuple[str, ...]:
    """Comma-separated IP addresses and CIDR networks (ingress-nginx's ValidateCIDRs); normalized."""
    try:
        return parse_networks(value)
    except ValueError as error:
        raise Invalid(str(error)) from None


def option(value: str, options: tuple[str, ...]) -> str:
    """One of `options`, compared without case and surrounding blanks (ingress-nginx's ValidateOptions);
    the option as listed."""
    lowered = value.strip().lower()
    for known in options:
        if lowered == known.lower():
            return known
    raise Invalid(f"{value!r:.40} is not one of {', '.join(options)}")


def seconds(value: str) -> int:
    """A whole number of seconds above 0 (ingress-nginx's timeouts are unitless integers)."""
    number = integer(value)
    if number <= 0:
        raise Invalid(f"{value!r:.40} is not a number of seconds above 0")
    return number


def on_off(value: str) -> bool:
    """nginx's "on" or "off" (ingress-nginx's proxySSLOnOffRegex)."""
    return option(value, ("on", "off")) == "on"


# ingress-nginx's affinityCookieExpiresRegex, whole (session-cookie-max-age and -expires).
_COOKIE_SECONDS = re.compile(r"0|-?[1-9][0-9]{0,11}")


def cookie_seconds(value: str) -> int:
    """The lifetime of an affinity cookie, in seconds (not negative)."""
    if _COOKIE_SECONDS.fullmatch(value.strip()) is None:
        raise Invalid(f"{value!r:.40} is not a number of seconds")
    number = int(value)
    if number < 0:
        raise Invalid(f"{value!r:.40} is negative")
    return number

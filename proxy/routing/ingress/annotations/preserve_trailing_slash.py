"""`preserve-trailing-slash`: keep the trailing slash in the HTTPS redirect's Location.

Without it (the default) one trailing "/" of the request URI is dropped, as ingress-nginx's lua_ingress.lua does
(routing.filters.HttpsRedirect; the Ingress's redirected routes get HTTPS_REDIRECT_KEEPING_SLASH with "true").
"""

from proxy.routing.ingress.annotations.values import boolean

NAME = "preserve-trailing-slash"
DEFAULT = False


def parse(value: str) -> bool:
    return boolean(value)

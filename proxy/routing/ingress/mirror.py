"""ingress-nginx's `mirror-target`, `mirror-request-body` and `mirror-host`, compiled into a `Mirror` filter.

ingress-nginx adds `mirror /_mirror-<uid>` to every location of the Ingress, whose internal location does
`proxy_set_header Host <mirror-host>; proxy_pass <mirror-target>;`: each request is copied there once it is
complete (nginx's mirror module), the answer is ignored. pyngress sends the copy with the RequestMirror
machinery (proxy.http.mirror: after the request, answer dropped, bounded in flight and in body size), so a
slow mirror never slows the real request (ingress-nginx's does). The copy: the head sent to the pod with
the target's request URI (the path as written with its variables rendered, e.g. `/mirror$request_uri`; a
plain path gets the request's query appended, as proxy_pass with a URI; no path keeps the request's own
URI), Host from `mirror-host` or else the target's host, and without the body (nor Content-Length and
Transfer-Encoding) with `mirror-request-body: off`.

The mirror is dialled as a cluster: the target's host must be a Service's cluster DNS name (`svc`,
`svc.ns`, `svc.ns.svc`, `svc.ns.svc.cluster.local`; a bare `svc` is in the Ingress's namespace) and its
port (default 80) a port of that Service. Another host (an IP address, an outside name), an https target
or a variable in the host cannot be dialled: a warning, nothing mirrored.
"""

from __future__ import annotations

import re

from proxy.routing.clusters import cluster_key
from proxy.routing.external_auth import compile_template
from proxy.routing.filters import Mirror, MirrorCopy
from proxy.routing.ingress.annotations import IngressAnnotations

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_SERVICE_NAME = re.compile(rf"(?P<service>{_LABEL})(\.(?P<namespace>{_LABEL})(\.svc(\.cluster\.local)?)?)?\.?")


def mirror_of(values: IngressAnnotations, namespace: str) -> tuple[Mirror | None, list[str]]:
    """The Ingress's mirror (None: none) and problems, as messages."""
    problems: list[str] = []
    target = values.mirror_target
    if not target:
        used = [name for name, on in (("mirror-host", values.mirror_host),
                                      ("mirror-request-body", not values.mirror_request_body)) if on]
        if used and "mirror-target" not in values.invalid:
            problems.append(f"annotations {', '.join(used)} have no effect without mirror-target")
        return None, problems
    scheme, _, rest = target.partition("://")
    split = re.search(r"[/?$]", rest)
    authority, path = (rest[:split.start()], rest[split.start():]) if split is not None else (rest, "")
    host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "")
    named = _SERVICE_NAME.fullmatch(host.lower())
    reason = ""
    if scheme.lower() != "http":
        reason = "https mirror targets are not supported yet (the copy would be sent in plain HTTP)"
    elif named is None:
        reason = (f"host {host!r:.60} is not a Service's cluster DNS name (svc, svc.ns, svc.ns.svc.cluster.local); "
                  "pyngress dials mirrors as Services")
    elif port and not (port.isdigit() and 0 < int(port) < 65536):
        reason = f"port {port!r:.10} is not a port number"
    if reason:
        problems.append(f"annotation mirror-target: {reason}; no request is mirrored")
        return None, problems
    assert named is not None
    template, unknown = compile_template(path)
    if unknown:
        problems.append(f"annotation mirror-target: nginx variable ${unknown[0]} is not supported; no request is "
                        "mirrored")
        return None, problems
    cluster = cluster_key(named["namespace"] or namespace, named["service"], port or "80")
    copy = MirrorCopy(host=(values.mirror_host or host).encode("latin-1"),
                      path=None if template.static else template,
                      static=path.encode("latin-1") if template.static else b"", body=values.mirror_request_body)
    return Mirror(cluster, copy=copy), problems


__all__ = ["mirror_of"]

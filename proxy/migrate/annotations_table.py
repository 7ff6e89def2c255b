"""ingress-nginx's annotations and what pyngress does with each: generated from docs/ingress-nginx.md
by scripts/annotation-catalogue (edit the docs, then run it).
"""

from __future__ import annotations

# (annotation, status, note): status is supported, supported with a difference, refused or not yet.
ROWS: tuple[tuple[str, str, str], ...] = (
    ('affinity', 'supported',
     "`cookie` (the only type): cookie affinity on the Ingress's backends; it wins over "
     '`upstream-hash-by` and `load-balance` (balancer.lua). Any other value: no affinity (warning).'),
    ('affinity-canary-behavior', 'supported with a difference',
     'With `affinity: cookie` on the main Ingress, a request whose affinity cookie names a main pod stays '
     "on the main backend (before the canary's header, cookie and weight rules, as balancer.lua); "
     '`sticky` (default): one whose cookie names a canary pod goes to the canary; `legacy`: the canary '
     "rules decide again for it. (The cookie's value starts with a digest of its Service, so this is a "
     'build-time cookie condition: no per-request cost for other routes.) Differences: with `legacy` the '
     "canary's pods still set the cookie (nginx's don't); the main Ingress's affinity must come from its "
     "annotations (not a BackendTrafficPolicy); a canary's own affinity, hashing and balancing "
     "annotations are ignored (warning), the main Ingress's apply to both backends."),
    ('affinity-mode', 'supported with a difference',
     '`balanced` and `persistent` are read; both are served persistent: a cookie keeps its pod while that '
     'pod is ready (scaling up moves no session).'),
    ('app-root', 'supported',
     '302 from `/` to `scheme://<Host header><app-root>`, before any other rule of the host.'),
    ('auth-always-set-cookie', 'supported',
     "The auth service's Set-Cookie is added to every response, not only to 200, 201, 204, 206, 301, 302, "
     "303, 304, 307, 308 ones (nginx's `add_header` without `always`). Invalid value: the Ingress's "
     'routes answer 503 (ingress-nginx rejects its auth configuration).'),
    ('auth-cache-duration', 'supported',
     'nginx `proxy_cache_valid` entries, comma-separated (`200 202 10m, 401 5m`; units ms s m h d w M y); '
     "default `200 202 401 5m`; only with `auth-cache-key`. Invalid value: the Ingress's routes answer "
     '503.'),
    ('auth-cache-key', 'supported with a difference',
     "Caches the auth service's answers (status, `auth-response-headers` values, Set-Cookie, "
     'WWW-Authenticate) under this key, with nginx variables (below); a cache hit asks nothing. One key '
     "space per Ingress (nginx's: per location); at most 10,000 answers per process, the oldest dropped "
     'first. A variable pyngress does not know: no cache, with a warning.'),
    ('auth-keepalive', 'supported',
     "Idle connections to the auth service kept for reuse (nginx's `keepalive N`: pyngress's own upstream "
     'pool, per process); 0 (default): a connection per auth request, as ingress-nginx. Ignored with a '
     "variable in the URL's host, or with `-requests`/`-timeout` at 0 or less (warnings), as there."),
    ('auth-keepalive-requests', 'supported',
     'Requests one kept connection to the auth service carries before it is closed (default 1000); 0 or '
     'less turns keepalive off, as ingress-nginx.'),
    ('auth-keepalive-share-vars', 'supported with a difference',
     'Validated; pyngress always sends the auth service the request\'s own X-Request-ID (as with `"true"`).'),
    ('auth-keepalive-timeout', 'supported',
     'Seconds an idle kept connection to the auth service stays open (default 60).'),
    ('auth-method', 'supported',
     "The auth request's method (default GET, nginx's subrequest method); with it the auth service also "
     "gets X-Original-URI and X-Scheme, as ingress-nginx's template. Invalid method: the Ingress's routes "
     'answer 503 ("invalid HTTP method").'),
    ('auth-proxy-set-headers', 'supported',
     "A ConfigMap (`name` or `namespace/name`, the Ingress's namespace only) whose data are headers sent "
     "to the `auth-url` service, replacing the client's of the same name; values may use `auth-url`'s "
     'nginx variables. Fails closed, as ingress-nginx denies the location: a missing ConfigMap, one of '
     'another namespace, a header name outside `[A-Za-z0-9_-]`, a value that is not one line of ASCII or '
     'a variable not understood make every route of the Ingress answer 503, with a warning. Cluster mode '
     'keeps the data only of ConfigMaps an Ingress names (GET when a name appears); its changes apply '
     'without a restart.'),
    ('auth-realm', 'supported',
     'The realm of `WWW-Authenticate: Basic realm="..."` (quotes escaped); default empty, as '
     'ingress-nginx.'),
    ('auth-request-redirect', 'supported',
     "The X-Auth-Request-Redirect value sent to the auth service (default: the request's URI). Invalid "
     "value: the Ingress's routes answer 503."),
    ('auth-response-headers', 'supported',
     'Header names copied from a 2xx auth answer into the request sent to the pod, replacing any the '
     "client sent (one absent from the answer is not sent at all, as nginx's empty `proxy_set_header`). "
     'Invalid list: the Ingress\'s routes answer 503 ("invalid headers list").'),
    ('auth-secret', 'supported with a difference',
     "A Secret (any type) of the Ingress's namespace: `name` or `namespace/name`. Another namespace is "
     'refused (503), as ingress-nginx with its default `allow-cross-namespace-resources: false`. A '
     'missing Secret, or one without key `auth` (auth-file): every path of the Ingress answers 503, with '
     'a warning. Cluster mode holds the data only of Secrets an Ingress names (GET when a name appears); '
     "its changes apply without a restart. Difference: the hashes accepted are nginx's (`$apr1$`, "
     '`{PLAIN}`, `{SHA}`, `{SSHA}`, bcrypt `$2a$/$2b$/$2y$`, `$1$`, `$5$`, `$6$`), but a DES crypt hash '
     "needs Python's `crypt` module (Python < 3.13): elsewhere that user is never let in (warning). A "
     'password without a scheme is never accepted, as in nginx.'),
    ('auth-secret-type', 'supported',
     '`auth-file` (default: an htpasswd file in key `auth`) or `auth-map` (each key a user, its value the '
     'hash). Another value: 503 (fail closed), with a warning.'),
    ('auth-signin', 'supported',
     'On a 401 from the auth service: 302 to this URL plus `rd=<scheme>://<Host header><escaped request '
     "URI>` (unless the URL already sets the parameter), with the auth answer's Set-Cookie. Variables as "
     'in `auth-url`; an unknown one drops the redirect (the 401 is returned), with a warning.'),
    ('auth-signin-redirect-param', 'supported',
     'The query parameter carrying the original URL (default `rd`).'),
    ('auth-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('auth-tls-error-page', 'supported',
     "A client whose certificate is missing or refused gets 302 to this URL instead of 400 (nginx's "
     "`error_page 495 496 = URL`). Validated with ingress-nginx's pattern but its `@location` form; an "
     'invalid value fails closed (503).'),
    ('auth-tls-match-cn', 'supported',
     '`CN=<regex>` searched in the subject DN (RFC 2253, as `$ssl_client_s_dn`); no match: 403. A value '
     'without `CN=` or a regex that does not compile fails closed (503) with a warning.'),
    ('auth-tls-pass-certificate-to-upstream', 'supported',
     "`ssl-client-cert`: the URL-encoded PEM (`$ssl_client_escaped_cert`); without it a client's own "
     '`ssl-client-cert` field is dropped.'),
    ('auth-tls-secret', 'supported with a difference',
     'The host (every rule host of the Ingress; the oldest Ingress naming a host decides) asks client '
     "certificates verified against the Secret's `ca.crt` (and `ca.crl`); the host's routes check the "
     "verdict (the paths of its other Ingresses too, as nginx's server-level `ssl_verify_client`): no "
     'certificate with verify `on` 400 "No required SSL certificate was sent", a refused one 400 "The SSL '
     'certificate error", and send `ssl-client-verify`, `ssl-client-subject-dn`, `ssl-client-issuer-dn` '
     "upstream (replacing the client's). Fails closed: a missing or unusable Secret, one of another "
     "namespace, or a host whose CA an older Ingress decided otherwise: 503 for that Ingress's routes, "
     'never served unverified. Differences: a plain-HTTP request counts as one without certificate; '
     'sessions of authenticating hosts are never resumed (every connection verifies again) and a '
     "connection opened with another host's SNI gets 421."),
    ('auth-tls-verify-client', 'supported',
     '`on` (default), `off` (no certificate asked; `ssl-client-verify: NONE`), `optional`, '
     '`optional_no_ca` (a certificate the CA does not vouch for is forwarded with `FAILED:<reason>`). The '
     "handshake always completes, as nginx's; the answer comes per request. Another value: `on`, with a "
     'warning.'),
    ('auth-tls-verify-depth', 'supported',
     "nginx's `ssl_verify_depth` (OpenSSL's), default 1; 0 or an invalid value: 1."),
    ('auth-type', 'supported with a difference',
     '`basic`: 401 with `WWW-Authenticate: Basic realm="<auth-realm>"` without valid credentials (the '
     "`Authorization` field is forwarded, as nginx does). `digest` (ingress-nginx's auth_digest module): "
     'key `auth` is an htdigest file (`user:realm:HA1`), only the lines of `auth-realm` count; 401 with '
     '`WWW-Authenticate: Digest algorithm="MD5", qop="auth", realm=..., nonce=...` until the RFC 2617 '
     'response matches (method and URI included); a nonce older than 60 s gets a new challenge with '
     '`stale="true"`; `auth-map` with digest: 503. Difference for digest: no per-nonce request counter '
     "(the module's `auth_digest_replays`), so a captured Authorization field works again for the same "
     'URI until its nonce expires (60 s). Without `auth-type` nothing is asked, as ingress-nginx '
     '(`auth-secret` alone: a warning). Slow hashes (bcrypt, crypt) are checked on a small thread pool, '
     'off the event loop; successful checks are remembered (4096 entries, keyed digests, no plaintext) so '
     "a client's next requests do not pay the hash again."),
    ('auth-url', 'supported with a difference',
     'External authentication on every route of the Ingress (defaultBackend included), after source '
     "ranges and limits: the request, without body, goes to this URL with the client's headers plus Host "
     "(the URL's host), X-Original-URL, X-Original-Method, X-Sent-From, X-Real-IP, X-Forwarded-For, "
     'X-Auth-Request-Redirect, X-Request-ID. 2xx: served; 401 (with its WWW-Authenticate) and 403: '
     'returned; anything else, no answer, or no answer within proxy-connect-timeout + proxy-read-timeout '
     "(5 + 60 s): 500. Asked asynchronously with pyngress's own upstream connections (only on these "
     'routes); the request body waits. nginx variables: `$host`, `$http_host`, `$best_http_host`, '
     '`$request_uri`, `$escaped_request_uri`, `$uri`, `$args`, `$is_args`, `$scheme`, '
     '`$pass_access_scheme`, `$request_method`, `$remote_addr`, `$remote_user`, `$server_port`, '
     '`$request_id`, `$http_*`, `$cookie_*`, `$arg_*`; any other, or a value that is not an http(s) URL '
     '(`https://invalid..auth.url`): every route of the Ingress answers 503 (fail closed), with a '
     "warning. Difference: an https auth URL's certificate is verified (nginx's `proxy_ssl_verify` is off "
     'by default).'),
    ('backend-protocol', 'supported with a difference',
     '`HTTP` (default), `HTTPS`: TLS to the pods without verification, as ingress-nginx by default (SNI '
     '`<service>.<namespace>.svc` is sent; nginx sends none). `GRPC`: HTTP/2 to the pods without TLS '
     '(h2c, prior knowledge); `GRPCS`: HTTP/2 over TLS (ALPN h2, no verification; `proxy-ssl-secret` '
     'applies as with HTTPS). gRPC as with grpc_pass: trailers carried, `grpc-timeout` bounds the '
     "upstream request, the proxy's own errors are gRPC statuses with HTTP 200 (no route 12, no endpoints "
     'or connect failure 14, timeout 4). Differences: `H2C` (ingress-nginx refuses it and speaks HTTP) is '
     "HTTP/2 without TLS for any pod; an HTTP/1.1 client gets a pod's trailers as chunked trailers only "
     'when it sent `TE: trailers`. `AUTO_HTTP`, `FCGI`: HTTP/1.1 with a warning.'),
    ('canary', 'supported with a difference',
     "The canary lends its backend to the main Ingress's route with the same host, path and pathType; "
     "ingress-nginx attaches it to the main *Service* (every path using it). A canary's defaultBackend is "
     'not served (warning). Its annotations other than `canary-*` and `affinity-canary-behavior` are '
     'ignored, as in ingress-nginx, and named in one warning.'),
    ('canary-by-cookie', 'supported',
     '`always` / `never` (first cookie of that name).'),
    ('canary-by-header', 'supported',
     '`always` / `never`; other values fall through to cookie, then weight.'),
    ('canary-by-header-pattern', 'supported with a difference',
     'Unanchored search like `ngx.re.match`, with Python `re`; a pattern that does not compile sends '
     'requests carrying the header to the main backend (as nginx does on a match error), with a warning.'),
    ('canary-by-header-value', 'supported',
     'Exact value; `always`/`never` then have no meaning.'),
    ('canary-weight', 'supported',
     'A weighted pair of backends; not a number: 0 (warning).'),
    ('canary-weight-total', 'supported',
     "Totals below 100 count as 100, as in ingress-nginx's balancer (warning)."),
    ('client-body-buffer-size', 'not yet',
     ''),
    ('configuration-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('connection-proxy-header', 'not yet',
     ''),
    ('cors-allow-credentials', 'supported',
     'Default `true`, as ingress-nginx (sent with every allowed answer, even with origin `*`, as nginx '
     'does).'),
    ('cors-allow-headers', 'supported',
     "Default ingress-nginx's list (`DNT,Keep-Alive,User-Agent,...,Authorization`); a value outside its "
     'characters falls back to it with a warning.'),
    ('cors-allow-methods', 'supported',
     'Default `GET, PUT, POST, DELETE, PATCH, OPTIONS`; a value outside letters and commas falls back to '
     'it with a warning.'),
    ('cors-allow-origin', 'supported with a difference',
     'Default `*`; a list of `scheme://host[:port]`, `null`, `*` (anywhere: every origin). Compared as '
     'written, case-insensitively (no default port: `http://a.com` is not `http://a.com:80`); `*.` is '
     'exactly one label. An entry that is not an origin is skipped with a warning (ingress-nginx skips it '
     "silently); none left: no CORS headers. Difference: anchored at both ends (ingress-nginx's `~* "
     '(...)$` regex has no `^`, so `https://evil.example/https://a.com` passed).'),
    ('cors-expose-headers', 'supported',
     'Default none.'),
    ('cors-max-age', 'supported',
     'Default 1728000 (20 days).'),
    ('custom-headers', 'supported',
     "A ConfigMap (`name` or `namespace/name`, the Ingress's namespace only) whose data are headers set "
     "on every answer of the Ingress's routes (nginx's `more_set_headers`: a pod's header of that name is "
     'replaced; values are literal text, `$remote_addr` included). Each name must be listed in the '
     'ConfigMap key `global-allowed-response-headers` (`--configmap`). Fails closed, as ingress-nginx '
     'denies the location: a missing ConfigMap, one of another namespace, a header not allowed, or a name '
     "or value outside ingress-nginx's character sets make every route of the Ingress answer 503, with a "
     'warning. Cluster mode keeps the data only of ConfigMaps an Ingress names (GET when a name appears); '
     'changes apply without a restart.'),
    ('custom-http-errors', 'supported with a difference',
     "With `default-backend`: the listed codes (400-599) of the pod's answers, and the proxy's own "
     "502/504, are answered by that Service as ingress-nginx's custom error location asks it: path `/`, "
     "the original method and fields (not the ConfigMap's `proxy-set-headers`, which that location does "
     'not inherit) plus `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`, '
     "`X-Service-Name`, `X-Service-Port`, `X-Request-ID` (replacing a client's fields of those names), "
     "`X-Forwarded-For` (the client's address) and `Host` (the client's, or a trusted "
     "`X-Forwarded-Host`); no other forwarded field of the proxy's (`X-Forwarded-Proto`, `-Port`, "
     "`-Host`, `X-Real-IP`): the client's own pass as they came, as nginx's; the client gets its answer. "
     "Without `default-backend`, the Service of `--default-backend-service` (ingress-nginx's flag) "
     'answers; without either the annotation does nothing (warning). Differences: an answer that comes '
     'while the request body is still arriving is passed through; the error backend gets no request body.'),
    ('default-backend', 'supported',
     "A Service of the Ingress's namespace (its first port) answers for every path whose Service has no "
     'ready endpoints (or does not exist), with `X-Code: 503` and the fields above, at path `/`, body '
     'included; and the `custom-http-errors` codes.'),
    ('denylist-source-range', 'supported',
     'Comma-separated addresses and CIDRs (IPv4 and IPv6; an IPv4-mapped client counts as IPv4); a client '
     "inside gets 403. Checked against the client address: the connection's peer, a PROXY protocol "
     "header's (`--proxy-protocol`), or the one a trusted X-Forwarded-For names "
     '(`--use-forwarded-headers` / `--enable-real-ip` with `--proxy-real-ip-cidr`; README, "Client '
     'addresses behind a load balancer"). An invalid entry (an empty one too) fails closed: every route '
     'of the Ingress answers 503, with a warning.'),
    ('enable-access-log', 'supported',
     '`"false"`: no access log line for the Ingress\'s requests (its defaultBackend\'s and canary backends\' '
     'too); route metrics still count them.'),
    ('enable-cors', 'supported with a difference',
     "ingress-nginx's CORS block: every answer to an allowed origin (or to anyone with origin `*`, even "
     'without an Origin header) gets Allow-Origin, -Credentials, -Methods, -Headers, -Max-Age (and '
     '-Expose-Headers when set); any OPTIONS request from an allowed origin is answered by the proxy with '
     '204 and `Content-Type: text/plain charset=UTF-8`. Differences: `Vary: Origin` is added when a '
     "specific origin is echoed (caches must not mix origins' answers); the preflight is answered before "
     "source ranges and limits, as nginx's rewrite phase runs before its access phase. The Gateway API's "
     'CORS filter in its ingress-nginx mode.'),
    ('enable-global-auth', 'supported',
     '`"false"` exempts the Ingress from the ConfigMap\'s `global-auth-url` (default true). An Ingress '
     "with its own `auth-url` uses that one and none of the global companions (ingress-nginx's "
     'shouldApplyGlobalAuth).'),
    ('enable-modsecurity', 'not yet',
     ''),
    ('enable-opentelemetry', 'supported',
     '`"true"`/`"false"` turns tracing on or off for the Ingress\'s routes when `--otlp-endpoint` is set '
     '(default: `--trace-by-default`); see README, "Tracing".'),
    ('enable-owasp-core-rules', 'not yet',
     ''),
    ('enable-rewrite-log', 'not yet',
     ''),
    ('force-ssl-redirect', 'supported',
     '308 (`http-redirect-code`) to https even without TLS; the Location has no port, as '
     "lua_ingress.lua's (`--publish-https-port` writes one unless it is 443; `use-port-in-redirects` "
     'writes one always).'),
    ('from-to-www-redirect', 'supported with a difference',
     '`www.<host>` (or `<host>` for a `www.` rule host) gets 308 (`http-redirect-code`) to '
     '`scheme://<host>:<port><request URI>` (port always written, one trailing `/` dropped, as '
     "ngx_srv_redirect.lua). Difference: only the Ingress's own paths redirect on the other name (nginx's "
     'redirect server answers any path); a name another rule already serves is not redirected. The other '
     "name has no certificate unless the Ingress's `tls` lists it."),
    ('http2-push-preload', 'not yet',
     ''),
    ('limit-burst-multiplier', 'supported',
     "Default 5 (also for a value that is not a number). Burst = limit x multiplier, nginx's `nodelay`: "
     'burst + 1 requests pass at once, then the rate.'),
    ('limit-connections', 'supported',
     'Requests in progress at once per client address, per replica, counted per Ingress (one zone for all '
     "its routes, as ingress-nginx); over it 503 (the ConfigMap's `limit-conn-status-code`). Slots are "
     'given back when a request ends, also when its client goes away.'),
    ('limit-rate', 'not yet',
     ''),
    ('limit-rate-after', 'not yet',
     ''),
    ('limit-rpm', 'supported',
     'Per client address, per replica (N replicas allow N times), one zone per Ingress; burst from '
     "`limit-burst-multiplier`; over it 503 (the ConfigMap's `limit-req-status-code`). A value that is "
     'not a number disables this limit only, with a warning (ingress-nginx drops every limit of the '
     'Ingress).'),
    ('limit-rps', 'supported',
     "As `limit-rpm`, per second. Limits are checked in ingress-nginx's order: connections, rpm, rps. "
     'Uses the local token-bucket limiter of BackendTrafficPolicy, per client address; a request refused '
     'by a limit is counted in `pyngress_rate_limited_requests`.'),
    ('limit-whitelist', 'supported with a difference',
     'Addresses and CIDRs never limited (also read as `limit-allowlist`, which is read first when both '
     'are set). Difference: an invalid value exempts no one, with a warning (ingress-nginx drops every '
     'limit of the Ingress).'),
    ('load-balance', 'supported',
     '`round_robin`, `ewma` (least request with a latency EWMA). `upstream-hash-by` wins over it. '
     '`chash`, `chashsubset`, `sticky_*` are set by other annotations: round robin, with a warning.'),
    ('mirror-host', 'supported',
     'The Host header of the mirrored copy (default: the host of `mirror-target`).'),
    ('mirror-request-body', 'supported',
     '`off`: the copy is sent at once without body (no Content-Length nor Transfer-Encoding); any other '
     'value is `on` (ingress-nginx).'),
    ('mirror-target', 'supported with a difference',
     'Every path of the Ingress (its defaultBackend too) copies each request to the URL, answer ignored; '
     "the URI is the target's path with its variables rendered (`$request_uri`...), a plain path gets the "
     "query appended, no path keeps the request's URI. Differences: the target's host must be a Service's "
     'cluster DNS name (`svc`, `svc.ns`, `svc.ns.svc[.cluster.local]`, port default 80), dialled as that '
     "Service's endpoints; an IP address, an outside name or `https` cannot be dialled yet (warning, "
     'nothing mirrored). The copy is sent after the request on its own connection (the RequestMirror '
     'machinery: bodies over 64 KiB are not copied, at most 256 copies in flight per process), so a slow '
     'mirror never slows the request (it does in nginx).'),
    ('modsecurity-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('modsecurity-transaction-id', 'not yet',
     ''),
    ('opentelemetry-trust-incoming-span', 'not yet',
     'Process-wide only: `--trace-trust-incoming` / `--no-trace-trust-incoming`.'),
    ('permanent-redirect', 'supported',
     '`return 301 <url>`: the URL as written, nothing appended; only http(s) URLs.'),
    ('permanent-redirect-code', 'supported',
     '300-308, else 301 (with a warning); not a number: no redirect (warning).'),
    ('preserve-trailing-slash', 'supported',
     'The HTTPS redirect (`ssl-redirect`, `force-ssl-redirect`) keeps the request URI as it is with '
     '`"true"`; without it one trailing `/` of the URI is dropped, as lua_ingress.lua does (`GET /` → '
     "`https://host`, `/app/` → `https://host/app`; with a query only the query's own last `/`)."),
    ('proxy-body-size', 'supported',
     'Largest request body (nginx sizes: bytes, `k`, `m`, `g`; `0` no limit): a larger `Content-Length` '
     'gets 413 before the pod sees anything, a chunked body gets 413 (and the connection closes) once it '
     "grows past it. Without the annotation, ingress-nginx's default 1m applies to every Ingress route "
     '(Settings.proxy_body_size, the global `proxy-body-size` of the ConfigMap); HTTPRoutes have no limit.'),
    ('proxy-buffer-size', 'not yet',
     ''),
    ('proxy-buffering', 'not yet',
     ''),
    ('proxy-buffers-number', 'not yet',
     ''),
    ('proxy-busy-buffers-size', 'not yet',
     ''),
    ('proxy-connect-timeout', 'supported',
     "Whole seconds; a setting of the Ingress's own cluster (its pools), TLS handshake included. Bad "
     "value: the global `proxy-connect-timeout` (the ConfigMap's, else `--upstream-connect-timeout`), "
     'with a warning.'),
    ('proxy-cookie-domain', 'not yet',
     ''),
    ('proxy-cookie-path', 'not yet',
     ''),
    ('proxy-http-version', 'supported with a difference',
     '`1.0`: requests reach the pods as HTTP/1.0 with `Connection: close` (one connection per request: '
     'nginx keeps no upstream keepalive with 1.0); `1.1` (default) as usual; another value: 1.1 with a '
     'warning. Difference: a chunked request body is answered 411 (nginx buffers it and sends a '
     'Content-Length; pyngress does not buffer bodies yet). WebSocket upgrades need 1.1.'),
    ('proxy-max-temp-file-size', 'not yet',
     ''),
    ('proxy-next-upstream', 'supported with a difference',
     'Words as ingress-nginx validates them. `error` and `invalid_header`: connect failures, resets and '
     'broken answers; `timeout`: an attempt that timed out once connected (a connect timeout counts as '
     '`error`); `http_500`..`http_504`, `http_403`, `http_404`, `http_429`: those answers; '
     '`non_idempotent`: POST, PATCH, LOCK may be resent; `off`: no retry at all. Retries are immediate, '
     'as in nginx. Without any `proxy-next-upstream*` annotation pyngress keeps its own default (connect '
     "failures retried, `--upstream-retries`), not nginx's `error timeout`. Bad value: `error timeout` "
     '(warning).'),
    ('proxy-next-upstream-timeout', 'supported',
     'No retry starts once this many seconds have passed since the request began; `0` (default) no limit.'),
    ('proxy-next-upstream-tries', 'supported with a difference',
     'Attempts in all, the first included: tries N is N-1 retries (`numRetries`); `0` no limit. Never '
     'more attempts than the Service has ready pods (nginx tries each server once); a retry goes to '
     'another pod than the last one, but with three or more pods it may return to one tried earlier. '
     'Default 3.'),
    ('proxy-read-timeout', 'supported',
     'Whole seconds the pod may take to answer or between two reads of its answer; replaces '
     "`--upstream-read-timeout` (ingress-nginx default 60) for the Ingress's routes. Bad value: the "
     'global one, with a warning.'),
    ('proxy-redirect-from', 'not yet',
     ''),
    ('proxy-redirect-to', 'not yet',
     ''),
    ('proxy-request-buffering', 'supported with a difference',
     '`on`: the whole request body is read before the pod is dialed (a slow client never holds a pod '
     'connection; proxy-body-size still answers 413 over its limit); `off`: streamed as it arrives. '
     '`on`/`off` in any case; another value keeps the default, with a warning. Differences: unset (and '
     "without the ConfigMap key) pyngress streams, where ingress-nginx's default is `on`; bodies are held "
     'in memory, and past 8 MiB the request goes up and the rest streams (nginx spools to a temporary '
     'file).'),
    ('proxy-send-timeout', 'supported',
     'Whole seconds the pod may take to read more of the request body (globally `--upstream-read-timeout` '
     'covers both). Bad value: the global one, with a warning.'),
    ('proxy-ssl-ciphers', 'not yet',
     ''),
    ('proxy-ssl-name', 'supported with a difference',
     'Validated; like ingress-nginx, it only acts with `proxy-ssl-secret` (alone: a warning).'),
    ('proxy-ssl-protocols', 'not yet',
     ''),
    ('proxy-ssl-secret', 'supported with a difference',
     "`namespace/name` of a Secret (any type) in the Ingress's namespace: `ca.crt` verifies the pods' "
     'certificates with `proxy-ssl-verify: on`, `tls.crt`/`tls.key` (when present) is the client '
     'certificate shown to the pods. Acts with `backend-protocol: HTTPS` (without it: a warning). A '
     "missing Secret, another namespace, or neither a CA nor a key pair: the Ingress's paths answer 503, "
     'with a warning; never served unverified. Difference: without `proxy-ssl-name` the name verified is '
     "the Service's DNS name (nginx: its upstream name), and SNI is always sent."),
    ('proxy-ssl-server-name', 'supported with a difference',
     'Validated (`on`/`off`); only acts with `proxy-ssl-secret`, as in ingress-nginx.'),
    ('proxy-ssl-verify', 'supported with a difference',
     'Validated (`on`/`off`); only acts with `proxy-ssl-secret`, as in ingress-nginx (alone: a warning).'),
    ('proxy-ssl-verify-depth', 'not yet',
     ''),
    ('rewrite-target', 'supported with a difference',
     'nginx\'s `rewrite "(?i)<path>" <target> break`: the whole path becomes the target, `$1`..`$9` from '
     "the path's groups, query kept; any rewrite makes the host a regex host (below). Other nginx "
     'variables in the target (`$host`...) stay literal text.'),
    ('satisfy', 'not yet',
     ''),
    ('server-alias', 'supported with a difference',
     "More names (comma-separated) served by the Ingress's first rule host's paths. Difference: an alias "
     'another Ingress names as a host is merged with that host (ingress-nginx ignores the alias).'),
    ('server-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('service-upstream', 'supported',
     '`"true"`: the Ingress\'s own cluster has one endpoint, the Service\'s ClusterIP and port (kube-proxy '
     "balances; pyngress's balancing, affinity and passive health then see one endpoint). A headless "
     'Service gets no endpoint (503, warning).'),
    ('session-cookie-change-on-failure', 'supported with a difference',
     'Validated; pyngress always behaves as `true`: a retried request goes to another pod and the cookie '
     'follows it.'),
    ('session-cookie-conditional-samesite-none', 'not yet',
     ''),
    ('session-cookie-domain', 'supported',
     '`Domain` attribute.'),
    ('session-cookie-expires', 'supported with a difference',
     'Seconds; sent as `Max-Age` (not an `Expires` date) when `session-cookie-max-age` is not set.'),
    ('session-cookie-max-age', 'supported',
     'Seconds, as `Max-Age`; without it (and `expires`), a session cookie.'),
    ('session-cookie-name', 'supported',
     'Default `INGRESSCOOKIE`.'),
    ('session-cookie-path', 'supported with a difference',
     "Default `/` (ingress-nginx: the rule's path): the cookie belongs to the Ingress's cluster, shared "
     'by its paths.'),
    ('session-cookie-samesite', 'supported',
     '`None`, `Lax`, `Strict` (any case).'),
    ('session-cookie-secure', 'supported',
     '`Secure` attribute.'),
    ('ssl-ciphers', 'not yet',
     ''),
    ('ssl-passthrough', 'supported with a difference',
     "Needs `--enable-ssl-passthrough` (as ingress-nginx); the Service of the host's `/` path gets the "
     'TLS stream undecrypted. Pods are dialled directly (balanced, connect retries) instead of the '
     'clusterIP, with no second hop through port 442; see README, "TLS".'),
    ('ssl-prefer-server-ciphers', 'not yet',
     ''),
    ('ssl-redirect', 'supported',
     '308 (`http-redirect-code`) to https for hosts with TLS, no port in the Location (as '
     '`force-ssl-redirect`); `"false"` turns it off (see README, TLS).'),
    ('stream-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('temporal-redirect', 'supported',
     'Wins over permanent-redirect, as in ingress-nginx.'),
    ('temporal-redirect-code', 'supported',
     '300-307, else 302 (with a warning); not a number: no redirect (warning).'),
    ('upstream-hash-by', 'supported with a difference',
     'One variable: `$remote_addr` (source IP), `$request_uri` (path and query), `$http_<name>` (a '
     'header; `_` for `-`), `$cookie_<name>`, with or without braces; a consistent hash ring (about 1/N '
     'of the keys move when a pod comes or goes). Other expressions (text, several variables): not '
     'hashed, with a warning.'),
    ('upstream-hash-by-subset', 'not yet',
     ''),
    ('upstream-hash-by-subset-size', 'not yet',
     ''),
    ('upstream-vhost', 'supported with a difference',
     "The Host header the pods get (X-Forwarded-Host keeps the client's). Difference: nginx variables "
     '(`$host`...) are refused (warning).'),
    ('use-port-in-redirects', 'supported',
     '`"true"`: the HTTPS redirect (`ssl-redirect`, `force-ssl-redirect`) writes the HTTPS port, '
     '`https://<host>:<port><uri>`, 443 included, as lua_ingress.lua writes its HTTPS listen port: '
     '`--publish-https-port`, else `--https-port`. The redirects pyngress makes are only ones lua or the '
     "template write whole, so nginx's `port_in_redirect` has nothing else to act on (no trailing-slash "
     "301: a Prefix path matches without its slash). Default: the ConfigMap's key."),
    ('use-regex', 'supported with a difference',
     'Case-insensitive regex paths; once one Ingress of a host sets it (or a rewrite-target), every path '
     'of that host is matched as nginx\'s `~* "^<path>"`, in ingress-nginx\'s order (the documented quirk, '
     "kept). Python `re` instead of PCRE, matched against pyngress's normalized path (nginx's `$uri` also "
     'decodes reserved `%XX` escapes); a path that does not compile is matched as literal text with a '
     'warning (nginx would refuse the whole reload).'),
    ('whitelist-source-range', 'supported',
     "Also read as `allowlist-source-range`, ingress-nginx's newer spelling, which is read first when "
     'both are set (an invalid one is not rescued by the other): only clients inside are served, others '
     'get 403; the denylist is checked first, and both before the rate limits (nginx counts a refused '
     "client's requests against its limits first). Same parsing and fail-closed 503 as "
     '`denylist-source-range`.'),
    ('x-forwarded-prefix', 'supported',
     "Sent only with a rewrite, as ingress-nginx's template does (a warning says so otherwise)."),
)

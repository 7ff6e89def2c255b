"""ingress-nginx's annotations and what pyngress does with each: generated from docs/ingress-nginx.md
by scripts/annotation-catalogue (edit the docs, then run it).
"""

from __future__ import annotations

# (annotation, status, note): status is supported, supported with a difference, refused or not yet.
ROWS: tuple[tuple[str, str, str], ...] = (
    ('affinity', 'supported',
     "`cookie` (the only type): cookie affinity on the Ingress's backends; it wins over "
     '`upstream-hash-by` and `load-balance` (balancer.lua). Any other value: no affinity (warning).'),
    ('affinity-canary-behavior', 'not yet',
     "A canary's own affinity, hashing and balancing annotations are ignored (warning); the main "
     "Ingress's apply to both backends."),
    ('affinity-mode', 'supported with a difference',
     '`balanced` and `persistent` are read; both are served persistent: a cookie keeps its pod while that '
     'pod is ready (scaling up moves no session).'),
    ('app-root', 'supported',
     '302 from `/` to `scheme://<Host header><app-root>`, before any other rule of the host.'),
    ('auth-always-set-cookie', 'not yet',
     ''),
    ('auth-cache-duration', 'not yet',
     ''),
    ('auth-cache-key', 'not yet',
     ''),
    ('auth-keepalive', 'not yet',
     ''),
    ('auth-keepalive-requests', 'not yet',
     ''),
    ('auth-keepalive-share-vars', 'not yet',
     ''),
    ('auth-keepalive-timeout', 'not yet',
     ''),
    ('auth-method', 'not yet',
     ''),
    ('auth-proxy-set-headers', 'not yet',
     ''),
    ('auth-realm', 'not yet',
     ''),
    ('auth-request-redirect', 'not yet',
     ''),
    ('auth-response-headers', 'not yet',
     ''),
    ('auth-secret', 'not yet',
     ''),
    ('auth-secret-type', 'not yet',
     ''),
    ('auth-signin', 'not yet',
     ''),
    ('auth-signin-redirect-param', 'not yet',
     ''),
    ('auth-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('auth-tls-error-page', 'not yet',
     ''),
    ('auth-tls-match-cn', 'not yet',
     ''),
    ('auth-tls-pass-certificate-to-upstream', 'not yet',
     ''),
    ('auth-tls-secret', 'not yet',
     ''),
    ('auth-tls-verify-client', 'not yet',
     ''),
    ('auth-tls-verify-depth', 'not yet',
     ''),
    ('auth-type', 'not yet',
     ''),
    ('auth-url', 'not yet',
     ''),
    ('backend-protocol', 'supported with a difference',
     '`HTTP` (default), `HTTPS`: TLS to the pods without verification, as ingress-nginx by default (SNI '
     '`<service>.<namespace>.svc` is sent; nginx sends none). `GRPC` / `GRPCS`: HTTP/1.1 (over TLS for '
     'GRPCS) with a warning until HTTP/2 to the pods exists; gRPC clients will not work. `AUTO_HTTP`, '
     "`FCGI`: HTTP/1.1 with a warning. `H2C` is not one of ingress-nginx's values: HTTP, with a warning, "
     'as there.'),
    ('canary', 'supported with a difference',
     "The canary lends its backend to the main Ingress's route with the same host, path and pathType; "
     "ingress-nginx attaches it to the main *Service* (every path using it). A canary's defaultBackend is "
     'not served (warning).'),
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
    ('custom-headers', 'not yet',
     ''),
    ('custom-http-errors', 'not yet',
     ''),
    ('default-backend', 'not yet',
     ''),
    ('denylist-source-range', 'supported',
     'Comma-separated addresses and CIDRs (IPv4 and IPv6; an IPv4-mapped client counts as IPv4); a client '
     "inside gets 403. Checked against the connection's peer address (trusting X-Forwarded-For is the "
     "ConfigMap's `use-forwarded-headers`, not yet). An invalid entry (an empty one too) fails closed: "
     'every route of the Ingress answers 503, with a warning.'),
    ('enable-access-log', 'not yet',
     ''),
    ('enable-cors', 'supported with a difference',
     "ingress-nginx's CORS block: every answer to an allowed origin (or to anyone with origin `*`, even "
     'without an Origin header) gets Allow-Origin, -Credentials, -Methods, -Headers, -Max-Age (and '
     '-Expose-Headers when set); any OPTIONS request from an allowed origin is answered by the proxy with '
     '204 and `Content-Type: text/plain charset=UTF-8`. Differences: `Vary: Origin` is added when a '
     "specific origin is echoed (caches must not mix origins' answers); the preflight is answered before "
     "source ranges and limits, as nginx's rewrite phase runs before its access phase. The Gateway API's "
     'CORS filter in its ingress-nginx mode.'),
    ('enable-global-auth', 'not yet',
     ''),
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
     '308 to https even without TLS.'),
    ('from-to-www-redirect', 'not yet',
     ''),
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
    ('mirror-host', 'not yet',
     ''),
    ('mirror-request-body', 'not yet',
     ''),
    ('mirror-target', 'not yet',
     'Request mirroring exists in the rule model (HTTPRoute); the annotation is not mapped yet.'),
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
    ('preserve-trailing-slash', 'supported with a difference',
     'pyngress always keeps the trailing slash in the HTTPS redirect, as if `"true"`; ingress-nginx\'s '
     'default drops one trailing `/`.'),
    ('proxy-body-size', 'not yet',
     ''),
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
    ('proxy-http-version', 'not yet',
     ''),
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
    ('proxy-request-buffering', 'not yet',
     ''),
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
     'Fails closed for now: it needs Opaque Secrets (a CA, maybe a client certificate), which pyngress '
     "does not watch yet: the Ingress's paths answer 503 (ingress-nginx denies a location whose Secret "
     'cannot be used), with a warning; they are never served unverified.'),
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
    ('server-alias', 'not yet',
     ''),
    ('server-snippet', 'refused',
     "Raw nginx configuration: refused on purpose (snippets were ingress-nginx's worst security hole). "
     'The Ingress is served without it; a warning (an Event in cluster mode) names the annotation.'),
    ('service-upstream', 'not yet',
     ''),
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
    ('ssl-passthrough', 'not yet',
     ''),
    ('ssl-prefer-server-ciphers', 'not yet',
     ''),
    ('ssl-redirect', 'supported',
     '308 to https for hosts with TLS; `"false"` turns it off (see README, TLS).'),
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
    ('upstream-vhost', 'not yet',
     ''),
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

"""The traffic policy front end: who switches resilience on, compiled into `routing.policies` dataclasses.

A translator with no behaviour of its own, like `routing.gateway`:

- `traffic`: our BackendTrafficPolicy (pyngress.dev/v1alpha1; Envoy Gateway's field names);
- `tls`: the Gateway API's BackendTLSPolicy (CA bundles from ConfigMaps);
- `sessions`: the Gateway API's `sessionPersistence` and HTTPRoute `retry`;
- `targets`: policy attachment (targetRefs); `spec`: one layer of settings and how layers fold;
- `index`: which layer applies to which route and backend (precedence), variant cluster keys;
- `status`: BackendTrafficPolicy's Accepted / Invalid / TargetNotFound / Conflicted per target, for the status
  writer; `tls_status`: BackendTLSPolicy's Accepted and ResolvedRefs per ancestor (the Gateways routing to
  the target).

The package imports nothing itself: `routing.gateway` and this package import each other's modules.
"""

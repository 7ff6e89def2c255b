"""The Gateway API features this implementation supports (GatewayClass status.supportedFeatures).

Names as the conformance suite spells them (sigs.k8s.io/gateway-api pkg/features). Left out on
purpose: h2c and gRPC backends, and GRPCRoute (its rules are routed, but gRPC needs HTTP/2 to clients and
pods, which comes later: add "GRPCRoute", "GRPCRouteNamedRouteRule" and "GRPCRouteRequestHeaderModifier"
then), ListenerSets, TLS/TCP/UDP routes, retries,
BackendTLSPolicy, client certificate validation, static addresses, infrastructure propagation.
"""

from __future__ import annotations

SUPPORTED_FEATURES: tuple[str, ...] = tuple(sorted((
    "Gateway",
    "GatewayAddressEmpty",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendRequestRedirect",
    "HTTPRouteBackendTimeout",
    "HTTPRouteBackendURLRewrite",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
)))

"""Upstream side of the proxy: endpoint sets, balancers, keep-alive pools, TLS to the pods, active health checks,
errors."""

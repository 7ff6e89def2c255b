"""Upstream side of the proxy: endpoint sets, round-robin, keep-alive pools, errors."""

"""HTTP/1.1 proxying on asyncio protocols: header rules, error pages, the per-request exchange."""

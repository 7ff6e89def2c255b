"""`pyngress migrate`: the report a team reads before switching from ingress-nginx (see proxy.migrate.cli)."""

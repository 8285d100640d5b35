"""The embedded PostgreSQL of `paygate serve` (server.py), who it runs as (accounts.py) and how clients
authenticate to it (auth.py)."""

from paygate.embedded.server import EmbeddedPostgres, EmbeddedPostgresError, postgres_bin_dir

__all__ = ["EmbeddedPostgres", "EmbeddedPostgresError", "postgres_bin_dir"]

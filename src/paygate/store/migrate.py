"""The migration runner, re-exported: it lives in `paygate.sqlmigrate` so the bank simulator can use it
without importing the gateway's store (docs/decisions/0014)."""

from __future__ import annotations

from paygate.sqlmigrate import all_names, apply

__all__ = ["all_names", "apply"]

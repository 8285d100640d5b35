"""Upgrades run the migrations while the old processes still serve (docs/deploy.md, "Upgrades"): every
migration must be one the previous release's code keeps working on. So a migration only expands the
schema — new tables, columns that are nullable or have a default, indexes, functions — and anything that
contracts it (drop, rename, retype, a new NOT NULL on existing rows) goes into a later release's migration,
once no running code uses what it removes, and says so on a line `-- contract: <why nothing uses it now>`.
Backfills are separate migrations (or jobs) from the schema change they fill."""

from __future__ import annotations

import re
from importlib import resources

# Written before the rule (0005 replaces unique(email) by the stricter unique(lower(email)): old code still works).
GRANDFATHERED = {"paygate.store.migrations/0001_core.sql", "paygate.store.migrations/0002_webhooks.sql",
                 "paygate.store.migrations/0003_bank_event_receipts.sql",
                 "paygate.store.migrations/0004_refund_operation_index.sql",
                 "paygate.store.migrations/0005_keys_logins.sql", "paygate.simbank.migrations/0001_bank.sql"}

CONTRACTING = [
    (re.compile(r"\bDROP\s+(TABLE|COLUMN|CONSTRAINT|TYPE|SCHEMA|VIEW|FUNCTION)\b", re.I), "drops"),
    (re.compile(r"\bRENAME\b", re.I), "renames"),
    (re.compile(r"\bALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\b", re.I), "changes a column's type"),
    (re.compile(r"\bSET\s+NOT\s+NULL\b", re.I), "makes existing rows' column NOT NULL"),
    (re.compile(r"\bADD\s+COLUMN\b(?:(?!\bDEFAULT\b)[^,;])*\bNOT\s+NULL\b(?:(?!\bDEFAULT\b)[^,;])*[,;]", re.I),
     "adds a NOT NULL column without a default"),
]


def migrations() -> list[tuple[str, str]]:
    out = []
    for package in ("paygate.store.migrations", "paygate.simbank.migrations"):
        for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql"):
                out.append((f"{package}/{entry.name}", entry.read_text()))
    return out


def problems(sql: str) -> list[str]:
    if re.search(r"^--\s*contract:\s*\S", sql, re.M):
        return []
    code = re.sub(r"--[^\n]*", "", sql)
    return [why for pattern, why in CONTRACTING if pattern.search(code)]


def test_every_new_migration_only_expands_the_schema() -> None:
    found = {name: problems(sql) for name, sql in migrations() if name not in GRANDFATHERED}
    assert {name: why for name, why in found.items() if why} == {}, "see this test's docstring"


def test_the_rule_catches_what_would_break_running_code() -> None:
    assert problems("ALTER TABLE payments DROP COLUMN description;") == ["drops"]
    assert problems("ALTER TABLE payments RENAME COLUMN a TO b;") == ["renames"]
    assert problems("ALTER TABLE payments ALTER COLUMN amount TYPE numeric;") == ["changes a column's type"]
    assert problems("ALTER TABLE payments ALTER COLUMN x SET NOT NULL;") == ["makes existing rows' column NOT NULL"]
    assert problems("ALTER TABLE payments ADD COLUMN x int NOT NULL;") == ["adds a NOT NULL column without a default"]
    assert problems("ALTER TABLE payments ADD COLUMN x int NOT NULL DEFAULT 0;") == []
    assert problems("ALTER TABLE payments ADD COLUMN x text;\nCREATE INDEX i ON payments (x);") == []
    assert problems("-- contract: nothing reads payments.x since 0.3\nALTER TABLE payments DROP COLUMN x;") == []


def test_the_grandfathered_list_names_real_files() -> None:
    assert {name for name, _ in migrations()} >= GRANDFATHERED

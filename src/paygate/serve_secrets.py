"""The secrets of a `paygate serve` home: random on first start, the same ones on every later start.

They live in `PAYGATE_HOME/secrets.json`, readable only by the user running paygate (0600), so that a
first run has no public key in it (API.md §19) and webhook secrets and card fingerprints stay stable
across restarts. A variable already set in the environment wins over the file (and is not stored).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

FILE_NAME = "secrets.json"


def _hex() -> str:
    return secrets.token_hex(32)


def _whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


GENERATORS: dict[str, Callable[[], str]] = {
    "PAYGATE_SECRET_KEY": _hex,
    "PAYGATE_FINGERPRINT_KEY": _hex,
    "PAYGATE_BANK_WEBHOOK_SECRET": _whsec,
    "PAYGATE_VAULT_KEY": _hex,
}


def fresh() -> dict[str, str]:
    """A new random value for each of the four secrets (also what the test harnesses run with)."""
    return {name: make() for name, make in GENERATORS.items()}


def load_or_create(home: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The four secrets for processes started from `home`, and the names generated just now.

    Values set in `environ` are used as they are; the others come from the file, or are generated and
    added to it.
    """
    path = home / FILE_NAME
    stored: dict[str, str] = {}
    if path.exists():
        loaded = json.loads(path.read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{path} is not a JSON object")
        stored = {str(k): str(v) for k, v in loaded.items()}
        path.chmod(0o600)
    created = [name for name in GENERATORS if name not in stored and not environ.get(name)]
    if created:
        stored.update({name: GENERATORS[name]() for name in created})
        _write_private(path, stored)
    return {name: environ.get(name) or stored[name] for name in GENERATORS}, created


def _write_private(path: Path, values: dict[str, str]) -> None:
    """Write via a 0600 temporary file and a rename: never a moment where the file is readable by others,
    and never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2)
    os.replace(tmp, path)

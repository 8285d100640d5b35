"""Cards waiting for their payment's challenge before they are saved (§16 with §15): pending_card_saves.

Like payment_methods, the number is only ever here sealed by the vault (for the saved method's future id); the
row lives from the create request to the transaction that ends the challenge's authorization.
"""

from __future__ import annotations

from typing import Any

from paygate.store.db import Conn, Row, fetch_one
from paygate.vault import Sealed

_COLUMNS = ("payment_id", "merchant_id", "customer_id", "pm_id", "brand", "last4", "exp_month", "exp_year",
            "fingerprint", "vault_key_id", "vault_nonce", "vault_ciphertext", "created_at")


async def insert(conn: Conn, values: dict[str, Any], sealed: Sealed) -> None:
    full = {**values, "vault_key_id": sealed.key_id, "vault_nonce": sealed.nonce, "vault_ciphertext": sealed.ciphertext}
    await conn.execute(
        f"INSERT INTO pending_card_saves ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})".encode(),
        [full[c] for c in _COLUMNS])


async def take(conn: Conn, payment_id: str) -> tuple[Row, Sealed] | None:
    """Remove the payment's pending save and return it (row, sealed number), or None."""
    row = await fetch_one(conn, "DELETE FROM pending_card_saves WHERE payment_id = %s RETURNING *", (payment_id,))
    if row is None:
        return None
    sealed = Sealed(row.pop("vault_key_id"), bytes(row.pop("vault_nonce")), bytes(row.pop("vault_ciphertext")))
    return row, sealed

"""The card vault (DESIGN.md: "encryption of saved card numbers (keys, rotation); nothing else reads card
numbers"): AES-GCM under `PAYGATE_VAULT_KEY`, each record naming its key, so keys can rotate
(docs/decisions/0016, docs/customers-and-vault.md).

    keyring.py   the keys: PAYGATE_VAULT_KEY → 32-byte keys and their public key ids
    sealing.py   seal / reveal one card number, bound to its record; CardNumber hides itself in repr
    rekey.py     `paygate vault rekey`: every record re-sealed under the current key, in batches

`reveal` is for the payment path only (charging a saved method); no list, view, log or event calls it.
"""

from paygate.vault.keyring import Keyring, keyring
from paygate.vault.sealing import CardNumber, Sealed, Tampered, UnknownKey, VaultError, reveal, seal

__all__ = ["CardNumber", "Keyring", "Sealed", "Tampered", "UnknownKey", "VaultError", "keyring", "reveal", "seal"]

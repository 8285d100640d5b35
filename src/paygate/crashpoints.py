"""Deliberate crash points for recovery tests and drills.

`PAYGATE_CRASH_POINT=<name>` makes the process die (as if SIGKILLed: no cleanup, no commit) the moment
it reaches that point. Unset in production; read once at import so the hot path pays one comparison.
Points: `after_bank_authorize`, `after_bank_capture`, `after_bank_void`, `after_bank_refund`,
`before_failover_inquiry` (an authorization's answer lost, its inquiry not yet sent), `after_failover_intent`
(failover committed the next acquirer's intent and the previous attempt's failure, and has not sent it),
`vault_rekey_before_commit` (a rekey batch resealed but not committed, with an earlier batch committed);
customer authentication (§15): `after_bank_authentication` (the bank opened the challenge, paygate has not
recorded it), `after_authentication_result` (a passed challenge committed with its authorization's intent, not
yet sent), `before_authenticated_authorization` (about to send that intent).
"""

from __future__ import annotations

import os

_ARMED = os.environ.get("PAYGATE_CRASH_POINT") or None


def reach(name: str) -> None:
    if name == _ARMED:
        os._exit(137)

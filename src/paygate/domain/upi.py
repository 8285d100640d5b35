"""UPI virtual payment addresses (`handle@bank`)."""

from __future__ import annotations

import re

_VPA = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,255}@[a-zA-Z][a-zA-Z0-9]{1,63}$")


def valid_vpa(vpa: str) -> bool:
    return bool(_VPA.match(vpa))

"""Rate limits as pure arithmetic over a caller-supplied clock: token buckets, and which buckets a request
draws from (API.md §19 "Abuse of public surfaces").

- A secret key draws from its merchant's `sk` bucket, a publishable key from the merchant's separate `pk`
  bucket, so a flood of public traffic cannot spend the budget of the merchant's own server.
- Publishable-key requests and the hosted checkout also draw from a bucket per client address: the key
  and the checkout link are public, so the address is the only thing that tells one caller from another.
- Failed authentications (a key that had to be looked up and matched nothing) draw from a bucket per
  address, which is checked *before* the lookup: once it is empty the address gets 429 without costing a
  database query, so guessing keys is bounded.

The buckets live in one process: with N API processes an address gets up to N times the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TokenBuckets:
    """A token bucket per key. At most `max_keys` buckets are kept, so many addresses cannot exhaust
    memory: past that the least recently used are forgotten (as if full again)."""

    rate_per_s: float
    burst: float
    max_keys: int = 100_000
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._state.get(key, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.rate_per_s)

    def _wait(self, tokens: float) -> float:
        return (1.0 - tokens) / self.rate_per_s

    def take(self, key: str, now: float) -> float:
        """0 if the request may go ahead (a token is spent), else the seconds until a token is free."""
        tokens = self._tokens(key, now)
        if tokens >= 1.0:
            self._put(key, tokens - 1.0, now)
            return 0.0
        self._put(key, tokens, now)
        return self._wait(tokens)

    def peek(self, key: str, now: float) -> float:
        """Like `take`, without spending a token: 0 if one is free, else the seconds until one is."""
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else self._wait(tokens)

    def _put(self, key: str, tokens: float, now: float) -> None:
        self._state.pop(key, None)  # re-inserted last: the dict's order is the order of last use
        if len(self._state) >= self.max_keys:
            self._evict()
        self._state[key] = (tokens, now)

    def _evict(self) -> None:
        # The least recently used tenth, in one sweep (amortised O(1) per request).
        for k in list(self._state)[: max(1, self.max_keys // 10)]:
            del self._state[k]

    def __len__(self) -> int:
        return len(self._state)


def retry_after(wait_s: float) -> int:
    """The Retry-After header for a wait: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))


@dataclass
class Limits:
    """Every bucket an API process keeps. A rate of 0 switches that limit off."""

    merchant_per_s: float  # per merchant and key kind (sk, pk): PAYGATE_RATE_LIMIT_PER_S
    public_per_min: float  # per client address: PAYGATE_PUBLIC_RATE_LIMIT_PER_MIN
    merchants: TokenBuckets | None = field(init=False)
    public: TokenBuckets | None = field(init=False)
    auth_failures: TokenBuckets | None = field(init=False)

    def __post_init__(self) -> None:
        rate = self.merchant_per_s
        self.merchants = TokenBuckets(rate, 2 * rate) if rate > 0 else None  # a burst of 2 s worth
        per_s = self.public_per_min / 60.0
        # A minute's worth at once, then the steady rate: a checkout that polls stays within it.
        self.public = TokenBuckets(per_s, self.public_per_min) if per_s > 0 else None
        self.auth_failures = TokenBuckets(per_s, self.public_per_min) if per_s > 0 else None

    def principal(self, kind: str, merchant_id: str, now: float) -> float:
        """A request authenticated as `kind` ("secret" | "publishable") of `merchant_id`."""
        if self.merchants is None:
            return 0.0
        return self.merchants.take(f"{'sk' if kind == 'secret' else 'pk'}:{merchant_id}", now)

    def public_address(self, address: str, now: float) -> float:
        """A publishable-key request or a hosted-checkout request from `address`."""
        return self.public.take(address, now) if self.public is not None else 0.0

    def authentication_blocked(self, address: str, now: float) -> float:
        """Asked before a key is looked up: > 0 when `address` has spent its failed attempts."""
        return self.auth_failures.peek(address, now) if self.auth_failures is not None else 0.0

    def authentication_failed(self, address: str, now: float) -> None:
        if self.auth_failures is not None:
            self.auth_failures.take(address, now)

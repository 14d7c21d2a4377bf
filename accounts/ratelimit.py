"""allauth's rate limits (sign-in, failed sign-ins, password resets), counted atomically in Redis.

allauth 65 keeps each limit's recent hits as a list in the cache and guards its read-modify-write
with a lock it polls for through ``cache.add`` for at most one second; a request that does not
get the lock within that second is treated as over the limit. Fifty people signing in at once
from one office address (one NAT, so one per-IP limit) queue on that one lock, and some of them
get 429, or "too many failed attempts", with the limits far above the burst.

With Redis, one Lua script does the same sliding-window check and update atomically, so there is
no lock to wait for. allauth offers no setting or adapter hook for how its limiter keeps hits, so
``install()`` replaces the two functions of ``allauth.core.internal.ratelimit`` that touch the
cache, ``_consume_single_rate`` and ``clear``, keeping their signatures and meaning: a hit is
allowed while fewer than ``amount`` hits are younger than ``duration``; a rolled-back hit (a
successful sign-in is not a failed one) is removed; ``clear`` forgets them all. Rollbacks go
through the usage objects returned here. Without Redis (the embedded demo: one process, an
in-memory cache) allauth's own code runs unchanged.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from allauth.core.exceptions import RateLimited
from allauth.core.internal import ratelimit as allauth_ratelimit
from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
PATCHED = ("_consume_single_rate", "clear")
# allauth's own functions, kept so the tests can check that ours take the same arguments.
ALLAUTH = {name: getattr(allauth_ratelimit, name, None) for name in PATCHED}

# KEYS[1]: the sorted set of one limit's hits, scored by Redis's clock in milliseconds.
# ARGV: amount, duration in ms, this hit's unique member, 1 to record it (0: a dry run).
HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
end
return 1
"""


@functools.cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])


@functools.cache
def _hit_script() -> Any:
    return _client().register_script(HIT)


def _hits_key(request: HttpRequest, **kwargs: Any) -> str:
    # allauth's own key (per IP, user or key), under the cache's prefix, as a set of hits.
    key = allauth_ratelimit.get_cache_key(request, **kwargs)
    return caches["default"].make_key(f"{key}:hits")


@dataclass
class Hit(allauth_ratelimit.SingleRateLimitUsage):
    member: str = ""

    def rollback(self) -> None:
        _client().zrem(self.cache_key, self.member)


def consume_single_rate(
    request: HttpRequest,
    *,
    app: str,
    action: str,
    rate: allauth_ratelimit.Rate,
    key: Any = None,
    user: Any = None,
    dry_run: bool = False,
    raise_exception: bool = False,
) -> Hit | None:
    hits = _hits_key(request, app=app, action=action, rate=rate, key=key, user=user)
    member = uuid.uuid4().hex
    window_ms = max(1, int(rate.duration * 1000))
    record = 0 if dry_run else 1
    if not _hit_script()(keys=[hits], args=[rate.amount, window_ms, member, record]):
        if raise_exception:
            raise RateLimited
        return None
    return Hit(cache_key=hits, cache_duration=rate.duration, timestamp=time.time(), member=member)


def clear(
    request: HttpRequest,
    *,
    app: str,
    action: str,
    config: dict[str, str] | None = None,
    key: Any = None,
    user: Any = None,
) -> None:
    rates = allauth_ratelimit.get_rates(app=app, action=action, config=config)
    keys = [
        _hits_key(request, app=app, action=action, rate=rate, key=key, user=user) for rate in rates
    ]
    if keys:
        _client().delete(*keys)


def install() -> None:
    """Count allauth's rate limits in Redis when the shared cache is Redis (called at start-up)."""
    if settings.CACHES["default"]["BACKEND"] != REDIS_BACKEND:
        return
    for name in (*PATCHED, "get_cache_key", "get_rates", "SingleRateLimitUsage"):
        if not hasattr(allauth_ratelimit, name):
            raise ImproperlyConfigured(
                f"allauth's rate limiter has no {name} any more: review accounts/ratelimit.py"
            )
    allauth_ratelimit._consume_single_rate = consume_single_rate
    allauth_ratelimit.clear = clear

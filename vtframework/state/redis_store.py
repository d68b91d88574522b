"""State in Redis, shared by every replica of a connector."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any, Iterator

from vtframework.errors import ConfigError
from vtframework.state.base import (
    DAY,
    StateError,
    StateStore,
    pack_value,
    redact_url,
    seconds_until_utc_midnight,
    unpack_value,
)

# Atomic on the Redis server, so replicas cannot both take the last slot.
# Numbers go back as strings: Lua numbers returned to Redis are truncated to integers.
_QUOTA_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_minute = tonumber(ARGV[3])
local per_day = tonumber(ARGV[4])
local day_left = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= per_minute then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(oldest[2]) + window - now
  if wait < 0.001 then wait = 0.001 end
  return tostring(wait)
end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= per_day then
  return tostring(day_left)
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], math.ceil(day_left) + 3600)
return '0'
"""


class RedisState(StateStore):
    """State in Redis, shared by every replica pointing at the same server.

    Keys live under ``vtf:``. Cache entries carry their own expiry time so a
    caller's clock decides freshness; Redis' own expiry (each entry's TTL)
    reclaims their memory. Large entries are stored compressed.

    The cache's size is Redis's to cap (``maxmemory`` with ``maxmemory-policy
    volatile-lru``): Redis tracks each key's last use itself, at no cost to
    us, and evicts only keys that expire anyway, never the livehunt map, which
    has no expiry. Bookkeeping of our own beside it could only drift from
    what Redis holds.
    """

    def __init__(self, url: str, prefix: str = "vtf:") -> None:
        import redis  # imported here so SQLite-only installs never need a Redis server

        self.prefix = prefix
        self._url = redact_url(url)
        self._redis_error = redis.RedisError
        self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConfigError(
                f"cannot reach Redis at {redact_url(url)} ({exc}); start Redis, fix VTF_REDIS_URL "
                "or leave it empty to keep state in the local SQLite file",
                key="vtf.redis_url",
            ) from exc
        self._quota = self._redis.register_script(_QUOTA_LUA)

    @contextlib.contextmanager
    def _guarded(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self._redis_error as exc:
            raise StateError(
                f"cannot {doing} the state in Redis at {self._url} ({exc}); check that Redis is up and "
                "writable (not out of memory), or leave VTF_REDIS_URL empty to keep state in SQLite"
            ) from None

    def cache_get(self, key: str, now: float) -> dict[str, Any] | None:
        with self._guarded("read"):
            raw = self._redis.get(f"{self.prefix}cache:{key}")
        entry = unpack_value(raw)
        # An entry another program (or version) wrote in our key space is as good as absent.
        if not isinstance(entry, dict) or not isinstance(entry.get("expires_at"), (int, float)):
            return None
        return entry.get("value") if entry["expires_at"] > now else None

    def cache_set(self, key: str, value: dict[str, Any], ttl: float, now: float) -> None:
        entry = pack_value({"value": value, "expires_at": now + ttl})
        with self._guarded("write"):
            self._redis.set(f"{self.prefix}cache:{key}", entry, px=max(1, int(ttl * 1000)))

    def kv_get(self, ns: str, key: str) -> Any | None:
        with self._guarded("read"):
            raw = self._redis.hget(f"{self.prefix}kv:{ns}", key)
        return unpack_value(raw)

    def kv_set(self, ns: str, key: str, value: Any) -> None:
        with self._guarded("write"):
            self._redis.hset(f"{self.prefix}kv:{ns}", key, json.dumps(value))

    def kv_delete(self, ns: str, key: str) -> None:
        with self._guarded("write"):
            self._redis.hdel(f"{self.prefix}kv:{ns}", key)

    def kv_items(self, ns: str) -> dict[str, Any]:
        with self._guarded("read"):
            raw = self._redis.hgetall(f"{self.prefix}kv:{ns}")
        items = ((k.decode("utf-8", "replace"), unpack_value(v)) for k, v in raw.items())
        return {k: v for k, v in items if v is not None}

    def quota_try_acquire(
        self, bucket: str, now: float, per_minute: int, per_day: int, window: float = 60.0
    ) -> float:
        day = int(now // DAY)
        keys = [f"{self.prefix}quota:{bucket}:minute", f"{self.prefix}quota:{bucket}:day:{day}"]
        args = [repr(now), repr(window), per_minute, per_day, repr(seconds_until_utc_midnight(now)), uuid.uuid4().hex]
        with self._guarded("write the quota counters to"):
            return float(self._quota(keys=keys, args=args))

    def close(self) -> None:
        self._redis.close()


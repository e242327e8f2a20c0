"""What the Redis backplane keeps in Redis' own terms: the Lua scripts that
claim and release a key for one holder (node numbers, room ownership),
and replies as text.

Pure functions and constants: no Redis client here (``coredis`` is an
optional dependency, imported by ``_hub/redis.py`` alone).
"""

from __future__ import annotations

__all__ = ["CLAIM", "RELEASE", "text"]

#: Claim KEYS[1] for ARGV[1] (a token) for ARGV[2] ms, unless someone else
#: holds it; returns the holder afterwards. With KEYS[2], raise that counter
#: to at least ARGV[3] (a node number re-claimed after Redis restarted empty).
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if KEYS[2] then
  if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[3]) then
    redis.call('SET', KEYS[2], ARGV[3])
  end
end
return ARGV[1]
"""
#: Delete KEYS[1] if ARGV[1] holds it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def text(value: object) -> str | None:
    """A reply (bytes, str, a number or ``None``) as text, ``None`` kept."""
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)

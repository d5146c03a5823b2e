"""Circuit-breaker state shared by many processes, in Redis (extra ``agentkeel[redis]``).

The state machine of ``_breaker_machine.py`` runs again, as one Lua script, inside
Redis: every admit and every record is a single atomic ``EVALSHA``. So a breaker
opened by failures in one process refuses the next call of every other process,
one round trip later, and half-open's trial quota holds across all of them.

Keys (``{name}`` is a hash tag, so both keys live on one Redis Cluster slot):

* ``<prefix>{<name>}`` — a hash: state, generation, deadlines, counters, the
  window's sums and a fingerprint of the config;
* ``<prefix>{<name>}:window`` — the count window's ring of outcome codes (a
  string, one byte per call) or the time window's per-second buckets (a hash).

Times are the callers' wall clocks (``time.time()``): keep the hosts' clocks in
sync (NTP); a skew of s seconds shifts deadlines by s seconds at most.

If Redis cannot be reached, the breaker falls back to a state of its own in this
process (the error is logged and counted by ``agentkeel._internal``, never raised
into the agent) and tries Redis again after ``retry_interval``.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import weakref
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from agentkeel import _internal
from agentkeel._errors import ConfigurationError
from agentkeel.resilience._base import as_seconds
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import (
    STATES_BY_CODE,
    BreakerMachine,
    BreakerSnapshot,
    Permit,
    Rejection,
    Transition,
)

DEFAULT_PREFIX = "agentkeel:breaker:"

# KEYS: state hash, window key. ARGV: op, now, then the config (_config_args), then
# the op's own arguments. Mirrors BreakerMachine rule for rule; see its docstrings.
_SCRIPT = r"""
local key, wkey = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local frt = tonumber(ARGV[3])
local srt = tonumber(ARGV[4])
local min_calls = tonumber(ARGV[5])
local time_window = ARGV[6] == '1'
local size = tonumber(ARGV[7])
local wait = tonumber(ARGV[8])
local trials = tonumber(ARGV[9])
local needed = tonumber(ARGV[10])
local max_half = tonumber(ARGV[11])
local fingerprint = ARGV[12]
local CLOSED, OPEN, HALF = 0, 1, 2

local function fmt(x) return string.format('%.17g', x) end

-- Lifetime counters (ns nf nsl ni nr) live in the same hash: one HMGET reads the
-- whole state, one HSET writes back only what changed (each redis.call costs).
local names = {'st', 'gen', 'changed', 'retry', 'reason', 'forced', 'ha', 'hg', 'hb',
               'wseq', 'wtot', 'wf', 'ws', 'whead', 'cfg', 'ns', 'nf', 'nsl', 'ni', 'nr'}
local raw = redis.call('HMGET', key, unpack(names))
local s = {}
local loaded = {}
if not raw[1] then
  s = {st = CLOSED, gen = 0, changed = now, retry = now, reason = 'created', forced = 0,
       ha = 0, hg = 0, hb = 0, wseq = 0, wtot = 0, wf = 0, ws = 0,
       whead = -math.huge, cfg = fingerprint, ns = 0, nf = 0, nsl = 0, ni = 0, nr = 0}
  redis.call('DEL', wkey)
else
  for i, name in ipairs(names) do
    local v = raw[i]
    if name == 'reason' or name == 'cfg' then v = v or ''
    elseif name == 'whead' and not v then v = -math.huge
    else v = tonumber(v) or 0 end
    s[name] = v
    loaded[name] = v
  end
end

local skip_save = false
local function save()
  if skip_save then return end
  local args = {}
  for _, name in ipairs(names) do
    local v = s[name]
    if v ~= loaded[name] then
      if type(v) == 'number' then v = fmt(v) end
      table.insert(args, name)
      table.insert(args, v)
    end
  end
  if #args > 0 then redis.call('HSET', key, unpack(args)) end
end

-- The window. Count: a ring of outcome bytes; wtot/wf/ws are its sums (wtot is
-- capped at size). Time: buckets t<i>/f<i>/s<i> for second i mod size.
local function window_clear()
  s.wtot, s.wf, s.ws, s.wseq = 0, 0, 0, 0
  s.whead = -math.huge
  redis.call('DEL', wkey)
end

local function tw_advance()
  local second = math.floor(now)
  local head = s.whead
  if second <= head then return end
  s.whead = second
  if second - head >= size then
    s.wtot, s.wf, s.ws = 0, 0, 0
    redis.call('DEL', wkey)
    return
  end
  for sec = head + 1, second do
    local i = sec % size
    local b = redis.call('HMGET', wkey, 't' .. i, 'f' .. i, 's' .. i)
    if b[1] then
      s.wtot = s.wtot - tonumber(b[1])
      s.wf = s.wf - (tonumber(b[2]) or 0)
      s.ws = s.ws - (tonumber(b[3]) or 0)
      redis.call('HDEL', wkey, 't' .. i, 'f' .. i, 's' .. i)
    end
  end
end

local function window_add(code)
  local failed = code % 2
  local slow = math.floor(code / 2)
  if time_window then
    if now >= s.whead + 1 then tw_advance() end
    local i = s.whead % size
    redis.call('HINCRBY', wkey, 't' .. i, 1)
    if failed == 1 then redis.call('HINCRBY', wkey, 'f' .. i, 1) end
    if slow == 1 then redis.call('HINCRBY', wkey, 's' .. i, 1) end
    s.wtot = s.wtot + 1
  else
    local pos = s.wseq % size
    if s.wtot >= size then
      local old = string.byte(redis.call('GETRANGE', wkey, pos, pos)) or 0
      s.wf = s.wf - old % 2
      s.ws = s.ws - math.floor(old / 2)
    else
      s.wtot = s.wtot + 1
    end
    redis.call('SETRANGE', wkey, pos, string.char(code))
    s.wseq = s.wseq + 1
  end
  s.wf = s.wf + failed
  s.ws = s.ws + slow
end

local transition = {}
local function numbers()
  if s.wtot == 0 then return 0, 0, 0 end
  return s.wf / s.wtot, s.ws / s.wtot, s.wtot
end
local function enter(state, reason, retry_at)
  s.st, s.reason, s.changed, s.forced = state, reason, now, 0
  s.gen = s.gen + 1
  s.ha, s.hg, s.hb = 0, 0, 0
  if state ~= OPEN then s.retry = now
  elseif retry_at == nil then s.retry = now + wait
  else s.retry = retry_at end
end
local function announce(prev, reason, fr, sr, calls)
  local after = 0
  if s.st == OPEN then after = s.retry - now end
  transition = {prev, s.st, reason, fmt(fr), fmt(sr), calls, fmt(after)}
end
local function to(state, reason)
  local fr, sr, calls = numbers()
  local prev = s.st
  if state ~= OPEN then window_clear() end
  enter(state, reason)
  announce(prev, reason, fr, sr, calls)
end
local function advance()
  if s.st == OPEN then
    if now >= s.retry then to(HALF, 'wait_elapsed') end
  elseif s.st == HALF and now >= s.changed + max_half then
    to(OPEN, 'half_open_timeout')
  end
end
local function evaluate()
  if s.wf / s.wtot >= frt then to(OPEN, 'failure_rate')
  elseif s.ws / s.wtot >= srt then to(OPEN, 'slow_call_rate') end
end

local reply
if op == 'bind' then
  -- Only claims the name: the state itself starts with the first real call's clock.
  if not raw[1] then
    skip_save = true
    local theirs = redis.call('HGET', key, 'cfg')
    if not theirs then
      redis.call('HSET', key, 'cfg', fingerprint)
      theirs = fingerprint
    end
    reply = {theirs}
  else
    reply = {s.cfg}
  end
elseif op == 'acquire' then
  advance()
  if s.st == CLOSED then
    reply = {1, s.gen, '0', 0}
  elseif s.st == HALF and s.ha < trials then
    s.ha = s.ha + 1
    reply = {1, s.gen, '0', 0}
  else
    s.nr = s.nr + 1
    if s.st == OPEN then reply = {0, s.gen, fmt(s.retry), 0}
    else reply = {0, s.gen, '-inf', 1} end
  end
elseif op == 'record' then
  local gen = tonumber(ARGV[13])
  local code = tonumber(ARGV[14])
  if code % 2 == 1 then s.nf = s.nf + 1 else s.ns = s.ns + 1 end
  if code >= 2 then s.nsl = s.nsl + 1 end
  if gen == -1 or gen == s.gen then
    if s.st == CLOSED then
      window_add(code)
      if (s.wf > 0 or s.ws > 0) and s.wtot >= min_calls then evaluate() end
    elseif s.st == HALF then
      window_add(code)
      if code ~= 0 then
        s.hb = s.hb + 1
        if s.hb > trials - needed then to(OPEN, 'half_open_failures') end
      else
        s.hg = s.hg + 1
        if s.hg >= needed then to(CLOSED, 'half_open_success') end
      end
    end
  end
  reply = {}
elseif op == 'release' then
  local gen = tonumber(ARGV[13])
  s.ni = s.ni + 1
  if gen ~= -1 and s.st == HALF and gen == s.gen and s.ha > 0 then
    s.ha = s.ha - 1
  end
  reply = {}
elseif op == 'trip' then
  if s.st ~= OPEN then to(OPEN, ARGV[13]) end
  reply = {}
elseif op == 'force' then
  local prev = s.st
  enter(OPEN, 'forced', now + tonumber(ARGV[13]))
  s.forced = 1
  if prev ~= OPEN then
    local fr, sr, calls = numbers()
    announce(prev, 'forced', fr, sr, calls)
  end
  reply = {}
elseif op == 'reset' then
  local prev = s.st
  local fr, sr, calls = numbers()
  s.ns, s.nf, s.nsl, s.ni, s.nr = 0, 0, 0, 0, 0
  window_clear()
  enter(CLOSED, 'reset')
  if prev ~= CLOSED then announce(prev, 'reset', fr, sr, calls) end
  reply = {}
elseif op == 'status' then
  advance()
  if time_window then tw_advance() end
  reply = {s.st, s.forced, s.reason, fmt(s.changed), fmt(s.retry),
           s.ns, s.nf, s.nsl, s.ni, s.nr, s.wtot, s.wf, s.ws, s.ha, s.hg, s.hb}
else
  return redis.error_reply('unknown breaker op ' .. op)
end
save()
table.insert(reply, 1, #reply)
for _, v in ipairs(transition) do table.insert(reply, v) end
return reply
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ConfigurationError(
            "RedisBreakerStore needs the redis client: install agentkeel[redis] "
            "(pip install 'agentkeel[redis]')"
        ) from exc
    return redis


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBreakerStore:
    """Keeps circuit breakers' state in Redis so that processes share it.

    ``RedisBreakerStore("redis://host:6379/0")`` or ``RedisBreakerStore(client)``
    with a ``redis.Redis``; pass it as ``CircuitBreaker(..., store=store)`` or
    ``CircuitBreakerRegistry(store=store)``. Breakers with the same name (and
    prefix) in any process share one state; their configs must match.

    Async calls use a ``redis.asyncio`` client made from the same URL (one per
    event loop), or ``async_client`` if given; with only a sync ``client``, async
    calls make their round trips blocking.
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        async_client: Any = None,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float | timedelta = 0.5,
        retry_interval: float | timedelta = 5.0,
    ) -> None:
        redis = _import_redis()
        self._timeout = as_seconds(socket_timeout, "socket_timeout", allow_zero=False)
        self.retry_interval = as_seconds(retry_interval, "retry_interval")
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be a string, got {prefix!r}")
        self.prefix = prefix
        self._url: str | None
        if isinstance(url_or_client, str):
            if not url_or_client.startswith(("redis://", "rediss://", "unix://")):
                raise ConfigurationError(
                    f"not a Redis URL: {url_or_client!r} (use redis://host:6379/0, "
                    "rediss://… or unix://…)"
                )
            self._url = url_or_client
            # Short timeouts: a dead Redis must cost a call milliseconds, not minutes.
            self.client = redis.Redis.from_url(
                url_or_client,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
        elif hasattr(url_or_client, "register_script"):
            self._url = None
            self.client = url_or_client
        else:
            raise ConfigurationError(
                f"RedisBreakerStore takes a redis:// URL or a redis.Redis client, "
                f"got {type(url_or_client).__name__}"
            )
        self._script = self.client.register_script(_SCRIPT)
        self._async_client = async_client
        self._async_scripts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._async_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisBreakerStore(prefix={self.prefix!r})"

    def keys(self, name: str) -> tuple[str, str]:
        """The Redis keys that hold the breaker ``name``'s state and window."""
        key = f"{self.prefix}{{{name}}}"
        return key, f"{key}:window"

    def bind(self, name: str, config: CircuitBreakerConfig) -> RedisBreakerState:
        return RedisBreakerState(self, name, config)

    def delete(self, name: str) -> None:
        """Forget the breaker ``name`` in Redis (say, to change its config everywhere)."""
        self.client.delete(*self.keys(name))

    def close(self) -> None:
        """Close the connections this store opened."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the async connections opened for the running event loop."""
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async_scripts.pop(loop, None)
        if entry is not None and self._async_client is None:
            await entry[0].aclose()

    # ------------------------------------------------------------------ transport
    def eval(self, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        return list(self._script(keys=keys, args=args))

    async def aeval(self, keys: Sequence[str], args: Sequence[Any]) -> list[Any]:
        script = self._async_script()
        if script is None:
            return self.eval(keys, args)
        return list(await script(keys=keys, args=args))

    def _async_script(self) -> Any:
        loop = asyncio.get_running_loop()
        with self._async_lock:
            entry = self._async_scripts.get(loop)
            if entry is None:
                client = self._async_client
                if client is None:
                    if self._url is None:
                        return None
                    import redis.asyncio

                    # One client per loop: asyncio connections belong to their loop.
                    client = redis.asyncio.Redis.from_url(
                        self._url,
                        socket_timeout=self._timeout,
                        socket_connect_timeout=self._timeout,
                    )
                entry = (client, client.register_script(_SCRIPT))
                self._async_scripts[loop] = entry
            return entry[1]


class RedisBreakerState:
    """One breaker's view of its shared state (made by :meth:`RedisBreakerStore.bind`)."""

    def __init__(self, store: RedisBreakerStore, name: str, config: CircuitBreakerConfig) -> None:
        self._store = store
        self.name = name
        self._keys = store.keys(name)
        redis = _import_redis()
        self._errors = redis.RedisError
        # These mean "Redis is away"; any other RedisError is a bug of ours (a script
        # error, say) and is raised in strict mode.
        self._outages = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
        resolved = config.resolved
        self._fingerprint = resolved.fingerprint()
        self._config_args = (
            repr(resolved.failure_rate_threshold),
            repr(resolved.slow_call_rate_threshold),
            str(resolved.minimum_calls),
            "1" if resolved.time_window else "0",
            str(resolved.window_size),
            repr(resolved.wait_in_open),
            str(resolved.half_open_max_calls),
            str(resolved.success_threshold),
            repr(resolved.max_wait_in_half_open),
            self._fingerprint,
        )
        # Where calls go while Redis is unreachable (fed the callers' wall clock too).
        self._local = BreakerMachine(resolved, time.time())
        self._local_lock = threading.Lock()
        self._down_until = -math.inf
        self._bound = False
        self._bind_lock = threading.Lock()
        try:
            self._ensure_bound()
        except self._errors as exc:
            self._degrade(0.0, exc)

    # ------------------------------------------------------------------ protocol
    def acquire(self, now: float) -> tuple[Permit | Rejection, Transition | None]:
        reply = self._run("acquire", now)
        if reply is None:
            return self._local_acquire(now)
        return self._parse_acquire(reply, now)

    async def aacquire(self, now: float) -> tuple[Permit | Rejection, Transition | None]:
        reply = await self._arun("acquire", now)
        if reply is None:
            return self._local_acquire(now)
        return self._parse_acquire(reply, now)

    def record(self, permit: Permit | None, now: float, code: int) -> Transition | None:
        if permit is not None and permit.local:
            return self._local_record(permit, now, code)
        reply = self._run("record", now, self._gen(permit), str(code))
        if reply is None:
            return self._local_record(None, now, code)
        return self._transition(reply, now)

    async def arecord(self, permit: Permit | None, now: float, code: int) -> Transition | None:
        if permit is not None and permit.local:
            return self._local_record(permit, now, code)
        reply = await self._arun("record", now, self._gen(permit), str(code))
        if reply is None:
            return self._local_record(None, now, code)
        return self._transition(reply, now)

    def release(self, permit: Permit | None, now: float) -> None:
        if (permit is None or not permit.local) and (
            self._run("release", now, self._gen(permit)) is not None
        ):
            return
        with self._local_lock:
            self._local.release(permit if permit is not None and permit.local else None)

    async def arelease(self, permit: Permit | None, now: float) -> None:
        if (permit is None or not permit.local) and (
            await self._arun("release", now, self._gen(permit)) is not None
        ):
            return
        with self._local_lock:
            self._local.release(permit if permit is not None and permit.local else None)

    def trip(self, now: float, reason: str) -> Transition | None:
        reply = self._run("trip", now, reason)
        if reply is None:
            with self._local_lock:
                return self._local.trip(now, reason)
        return self._transition(reply, now)

    def force_open(self, now: float, duration: float) -> Transition | None:
        reply = self._run("force", now, repr(duration))
        if reply is None:
            with self._local_lock:
                return self._local.force_open(now, duration)
        return self._transition(reply, now)

    def reset(self, now: float) -> Transition | None:
        reply = self._run("reset", now)
        if reply is None:
            with self._local_lock:
                return self._local.reset(now)
        return self._transition(reply, now)

    def snapshot(self, now: float) -> tuple[BreakerSnapshot, Transition | None]:
        reply = self._run("status", now)
        if reply is None:
            with self._local_lock:
                transition = self._local.advance(now)
                return self._local.snapshot(now), transition
        r = reply
        snap = BreakerSnapshot(
            state=STATES_BY_CODE[int(r[1])],
            forced=int(r[2]) == 1,
            reason=_text(r[3]),
            changed_at=float(r[4]),
            retry_at=float(r[5]),
            successes=int(r[6]),
            failures=int(r[7]),
            slow=int(r[8]),
            ignored=int(r[9]),
            rejected=int(r[10]),
            window_calls=int(r[11]),
            window_failed=int(r[12]),
            window_slow=int(r[13]),
            half_open_admitted=int(r[14]),
            half_open_good=int(r[15]),
            half_open_bad=int(r[16]),
        )
        return snap, self._transition(reply, now)

    @property
    def degraded(self) -> bool:
        """True while Redis is considered unreachable and local state is used."""
        return self._down_until > -math.inf

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _gen(permit: Permit | None) -> str:
        return "-1" if permit is None else str(permit.generation)

    def _args(self, op: str, now: float, extra: tuple[str, ...]) -> list[str]:
        return [op, repr(now), *self._config_args, *extra]

    def _run(self, op: str, now: float, *extra: str) -> list[Any] | None:
        """The script's reply, or None when Redis is unreachable (local state then)."""
        if now < self._down_until:
            return None
        try:
            if not self._bound:
                self._ensure_bound()
            reply = self._store.eval(self._keys, self._args(op, now, extra))
        except self._errors as exc:
            self._degrade(now, exc)
            return None
        self._down_until = -math.inf
        return reply

    async def _arun(self, op: str, now: float, *extra: str) -> list[Any] | None:
        if now < self._down_until:
            return None
        try:
            if not self._bound:
                self._ensure_bound()
            reply = await self._store.aeval(self._keys, self._args(op, now, extra))
        except self._errors as exc:
            self._degrade(now, exc)
            return None
        self._down_until = -math.inf
        return reply

    def _ensure_bound(self) -> None:
        """Check, once, that the breaker in Redis runs with the same config as ours."""
        with self._bind_lock:
            if self._bound:
                return
            reply = self._store.eval(self._keys, self._args("bind", 0.0, ()))
            theirs = _text(reply[1])
            if theirs != self._fingerprint:
                key = self._keys[0]
                raise ConfigurationError(
                    f"circuit breaker {self.name!r} already exists in Redis ({key}) with "
                    f"another config:\n  theirs: {theirs}\n  ours:   {self._fingerprint}\n"
                    "use the same config in every process, another name, or "
                    "RedisBreakerStore.delete(name) to start it afresh"
                )
            self._bound = True

    def _degrade(self, now: float, exc: BaseException) -> None:
        self._down_until = now + self._store.retry_interval
        # An outage is never raised, not even in strict mode: Redis going away is
        # weather, not a bug. Anything else is raised in strict mode only.
        outage = isinstance(exc, self._outages)
        _internal.report_internal_error("breaker.redis", exc, reraise=not outage)

    def _local_acquire(self, now: float) -> tuple[Permit | Rejection, Transition | None]:
        with self._local_lock:
            transition = self._local.advance(now)
            return self._local.acquire(now), transition

    def _local_record(self, permit: Permit | None, now: float, code: int) -> Transition | None:
        with self._local_lock:
            return self._local.record(permit, now, code)

    def _parse_acquire(
        self, reply: list[Any], now: float
    ) -> tuple[Permit | Rejection, Transition | None]:
        transition = self._transition(reply, now)
        if int(reply[1]) == 1:
            return Permit(int(reply[2]), local=False), transition
        retry_at = float(reply[3])
        return Rejection(retry_at, half_open=int(reply[4]) == 1), transition

    @staticmethod
    def _transition(reply: list[Any], now: float) -> Transition | None:
        start = int(reply[0]) + 1
        if len(reply) <= start:
            return None
        prev, state, reason, fr, sr, calls, after = reply[start : start + 7]
        return Transition(
            previous=STATES_BY_CODE[int(prev)],
            state=STATES_BY_CODE[int(state)],
            at=now,
            reason=_text(reason),
            failure_rate=float(fr),
            slow_call_rate=float(sr),
            calls=int(calls),
            retry_after=float(after),
        )

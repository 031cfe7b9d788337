"""The online store in a Redis server (`--redis-url`): one hash per entity,
`<prefix>:<view>:<key1>|<key2>...`, holding the event time under `_t` and each present field
as text (repr of a float gives it back exactly; a missing field is absent); the clock under
`<prefix>:clock`. Both writes are Lua scripts, so the newer-wins rule holds in the server
whoever else writes. The timetable is also indexed by flight number, for the API's search
by flight: a sorted set `<prefix>:flights:<carrier>|<flight>` of `<origin>|<sched_dep>`
scored by the scheduled departure in seconds (exact in a double), written with the row;
and by origin, for the API's departures board: a sorted set `<prefix>:departures:<origin>`
of `<carrier>|<flight>|<sched_dep>`, scored the same way."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis

from src.common.errors import PipelineError
from src.featurestore.online import OnlineStore, Row, StoreUnavailable, field_kinds
from src.featurestore.views import TIMETABLE, FeatureView

# Event times as zero-padded decimal text: Lua numbers are doubles, which cannot hold UTC
# nanoseconds exactly, but equal-length digit strings compare in time order.
TIME_DIGITS = 20
# KEYS[1] the entity's hash; ARGV[1] the event time; then field, value, field, value...
WRITE = """
local held = redis.call('HGET', KEYS[1], '_t')
if held and held > ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_t', unpack(ARGV))
return 1
"""
ADVANCE = """
local held = redis.call('GET', KEYS[1])
if held and held >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
BATCH = 2_000  # commands per pipeline round trip


def as_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def time_text(ns: int) -> str:
    return str(ns).zfill(TIME_DIGITS)


DECODE = {"int": int, "float": float, "str": str}
log = logging.getLogger(__name__)


class RedisStore(OnlineStore):
    def __init__(self, url: str, prefix: str = "fd"):
        self.url, self.prefix = url, prefix
        self.redis = redis.Redis.from_url(url, decode_responses=True)
        try:
            self.redis.ping()
        except redis.RedisError as exc:
            self.redis.close()
            raise PipelineError(f"{url}: cannot reach Redis ({exc})") from exc
        self.write_script = self.redis.register_script(WRITE)
        self.advance_script = self.redis.register_script(ADVANCE)

    @contextmanager
    def answering(self) -> Iterator[None]:
        """A server lost after the store opened is StoreUnavailable (the API's 503); the
        reason, which names the server, goes to the log."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.error("the online store's Redis is not answering: %s", exc)
            raise StoreUnavailable("the online store (Redis) is not answering") from exc

    def key(self, view: FeatureView, key: Row) -> str:
        return f"{self.prefix}:{view.name}:" + "|".join(str(k) for k in key)

    def flights_key(self, carrier: str, flight: int) -> str:
        return f"{self.prefix}:flights:{carrier}|{flight}"

    def departures_key(self, origin: str) -> str:
        return f"{self.prefix}:departures:{origin}"

    def write(self, view: FeatureView, rows: list[Row]) -> None:
        width = len(view.entities)
        names = view.field_names
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(rows), BATCH):
            for row in rows[start : start + BATCH]:
                args = [time_text(row[width])]
                for name, value in zip(names, row[width + 1 :], strict=True):
                    if value is not None:
                        args += [name, as_text(value)]
                self.write_script(keys=[self.key(view, row[:width])], args=args, client=pipe)
                if view is TIMETABLE:  # carrier, flight, origin, sched_dep
                    carrier, flight, origin, sched = row[:width]
                    seconds = sched // 1_000_000_000
                    pipe.zadd(self.flights_key(carrier, flight), {f"{origin}|{sched}": seconds})
                    pipe.zadd(self.departures_key(origin), {f"{carrier}|{flight}|{sched}": seconds})
            with self.answering():
                pipe.execute()

    def fetch(self, view: FeatureView, key: Row) -> tuple[int, list[Any]] | None:
        with self.answering():
            held = self.redis.hgetall(self.key(view, key))
        if not held:
            return None
        values = [
            None if name not in held else DECODE[kind](held[name])
            for name, kind in zip(view.field_names, field_kinds(view), strict=True)
        ]
        return int(held["_t"]), values

    def scheduled(self, carrier: str, flight: int, low: int, high: int) -> list[Row]:
        seconds = (low // 1_000_000_000, high // 1_000_000_000)  # then exactly, in ns
        with self.answering():
            found = self.redis.zrangebyscore(self.flights_key(carrier, flight), *seconds)
        members = cast(list[str], found)  # "<origin>|<sched_dep>" (decoded responses)
        keys = [(origin, int(sched)) for origin, sched in (m.split("|") for m in members)]
        keys = [(origin, sched) for origin, sched in keys if low <= sched < high]
        published = self.published([(carrier, flight, o, sched) for o, sched in keys])
        return [(*key, t) for key, t in zip(keys, published, strict=True) if t is not None]

    def scheduled_from(self, origin: str, low: int, high: int) -> list[Row]:
        seconds = (low // 1_000_000_000, high // 1_000_000_000)  # then exactly, in ns
        key = self.departures_key(origin)
        with self.answering():
            found = cast(list[str], self.redis.zrangebyscore(key, *seconds))
            if not found and not self.redis.exists(key):
                # Fed before the board's index existed: an empty board would be a lie.
                raise StoreUnavailable(
                    f"the online store (Redis) has no departures index for {origin}: empty "
                    "it (FLUSHDB) and run `python -m src.feed` again"
                )
        parts = [m.split("|") for m in found]  # "<carrier>|<flight>|<sched_dep>"
        keys = [(c, int(f), int(sched)) for c, f, sched in parts]
        keys = [(c, f, sched) for c, f, sched in keys if low <= sched < high]
        published = self.published([(c, f, origin, sched) for c, f, sched in keys])
        return [(*key, t) for key, t in zip(keys, published, strict=True) if t is not None]

    def published(self, keys: list[Row]) -> list[int | None]:
        """Each timetable row's publication time (its event time), None where the store
        holds no row: one round trip for all."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self.key(TIMETABLE, key), "_t")
        with self.answering():
            held = pipe.execute() if keys else []
        return [None if t is None else int(t) for t in held]

    def clock_ns(self) -> int | None:
        with self.answering():
            held = self.redis.get(f"{self.prefix}:clock")
        return None if held is None else int(held)

    def advance_ns(self, moment: int) -> None:
        with self.answering():
            self.advance_script(keys=[f"{self.prefix}:clock"], args=[time_text(moment)])

    def close(self) -> None:
        self.redis.close()

"""The composition root's product: every long-lived service of one hub process, built once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hub.broker import Broker, MemoryBroker, RedisBroker
from hub.clock import Clock, SystemClock
from hub.db import Database
from hub.identity.manager import AuthPolicy, IdentityManager
from hub.identity.passwords import PasswordHashing
from hub.identity.teachers import TeacherVerification
from hub.identity.tokens import AccessTokens, RefreshSecrets
from hub.notifications.service import Notifications
from hub.observability import HttpMetrics
from hub.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from hub.realtime.gateway import Gateway
from hub.realtime.presence import MemoryPresence, PresenceStore, RedisPresence
from hub.realtime.tickets import MemoryTickets, RedisTickets, TicketStore
from hub.resp import FastRedis
from hub.settings import Settings


@dataclass(frozen=True, slots=True)
class Hub:
    settings: Settings
    clock: Clock
    db: Database
    redis: Redis | None
    # The lean connection for the hot path (hub/resp.py), beside ``redis``.
    fast_redis: FastRedis | None
    broker: Broker
    limiter: RateLimiter
    identity: IdentityManager
    teachers: TeacherVerification
    metrics: HttpMetrics
    gateway: Gateway
    notifications: Notifications


HUB = web.AppKey("hub", Hub)


REDIS_CONNECTIONS = 100


def redis_client(url: str) -> Redis:
    """The hub's Redis client. Its pool holds at most ``REDIS_CONNECTIONS`` connections and a
    command that finds them all busy waits for one (up to 30 s) instead of failing at once
    with redis-py's "Too many connections", as thousands of sockets closing together (each
    leaving its channels' presence) would. Stale pooled connections after a Redis restart
    fail once; they are retried on a new one."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_CONNECTIONS,
        timeout=30,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # closing the client closes its pool
    return client


def build_hub(
    settings: Settings, *, clock: Clock | None = None, hashing: PasswordHashing | None = None
) -> Hub:
    """Wire every service from settings. Nothing here connects yet; ``start``-style work runs
    in the app's cleanup context."""
    clock = clock or SystemClock()
    db = Database(settings.db_url)
    redis: Redis | None = None
    fast: FastRedis | None = None
    broker: Broker
    limiter: RateLimiter
    tickets: TicketStore
    presence: PresenceStore
    if settings.redis_url:
        redis = redis_client(settings.redis_url)
        fast = FastRedis.like(redis)
        broker = RedisBroker(redis, settings.redis_prefix, fast)
        limiter = RedisRateLimiter(redis, settings.redis_prefix, fast)
        tickets = RedisTickets(redis, settings.redis_prefix)
        presence = RedisPresence(redis, settings.redis_prefix, uuid.uuid4().hex[:12])
    else:
        broker = MemoryBroker()
        limiter = MemoryRateLimiter(clock)
        tickets = MemoryTickets(clock)
        presence = MemoryPresence()
    policy = AuthPolicy(
        refresh_ttl=settings.refresh_token_ttl,
        refresh_grace=settings.refresh_grace_seconds,
        max_failures_per_account=settings.login_max_failures_per_account,
        account_window=settings.login_account_window,
        max_failures_per_address=settings.login_max_failures_per_address,
        address_window=settings.login_address_window,
    )
    signing_key = settings.signing_key()
    identity = IdentityManager(
        db,
        hashing or PasswordHashing(),
        AccessTokens(signing_key, settings.access_token_ttl, clock),
        RefreshSecrets(signing_key),
        limiter,
        clock,
        policy,
    )
    gateway = Gateway(
        db=db,
        broker=broker,
        tickets=tickets,
        presence=presence,
        clock=clock,
        send_buffer=settings.ws_send_buffer,
        max_frame_bytes=settings.ws_max_frame_bytes,
    )
    notifications = Notifications(db, gateway, clock)
    return Hub(
        settings=settings,
        clock=clock,
        db=db,
        redis=redis,
        fast_redis=fast,
        broker=broker,
        limiter=limiter,
        identity=identity,
        teachers=TeacherVerification(db, notifications, clock),
        metrics=HttpMetrics(),
        gateway=gateway,
        notifications=notifications,
    )

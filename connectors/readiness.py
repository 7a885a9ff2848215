"""Readiness of a Rasa server for a load balancer: `GET /webhooks/whatsapp/ready`.

Ready means every part a customer's message needs answers: a model is loaded, the shop
database answers, the lock store answers (Redis: a PING; in memory: always), and, when a
webhook port is configured, this server's inbox writer listens on it. Liveness
(`/webhooks/whatsapp/live`) only says the process answers HTTP: a load balancer takes a
server that is not ready out of rotation; an orchestrator restarts one that is not alive.

Every check is bounded by a short timeout and none blocks the event loop: the database
is asked on its own threads (`Database.read`), Redis through redis' asyncio client. A
database that does not answer keeps at most one probe waiting on its threads: while it
waits, later probes report it not ready without asking again.
"""
import asyncio
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa

from shop.db import Database

CHECK_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Check:
    name: str  # model | database | lock_store | webhook_port | stopping
    ok: bool
    detail: str


def model_check(agent: Any) -> Check:
    if agent is None:
        return Check("model", False, "no agent yet (the server is starting)")
    if not agent.is_ready():
        return Check("model", False, "no trained model loaded")
    return Check("model", True, str(getattr(agent, "model_id", "") or "loaded"))


def writer_check(configured_port: Optional[int], listening: Optional[str], running: bool) -> Check:
    if configured_port is None:
        return Check("webhook_port", True, "not configured (webhooks on the Rasa port)")
    if running and listening:
        return Check("webhook_port", True, f"the inbox writer listens on {listening}")
    if not running:
        return Check("webhook_port", False, f"the inbox writer for port {configured_port} is not running (restarting)")
    return Check("webhook_port", False, f"the inbox writer does not listen on port {configured_port}")


def _select_one(conn: Any) -> None:
    conn.execute(sa.text("SELECT 1"))


class DatabaseProbe:
    """Asks the shop database for `SELECT 1`, one probe at a time."""

    def __init__(self, db: Database, timeout: float = CHECK_TIMEOUT_SECONDS) -> None:
        self.db = db
        self.timeout = timeout
        self._probe: Optional["asyncio.Future[None]"] = None

    async def check(self) -> Check:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self.db.read(_select_one))
        try:
            await asyncio.wait_for(asyncio.shield(self._probe), self.timeout)
        except asyncio.TimeoutError:
            return Check("database", False, f"the shop database ({self.db.dialect}) did not answer within {self.timeout:g}s")
        except Exception as error:
            return Check("database", False, f"the shop database ({self.db.dialect}) is unreachable: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return Check("database", True, self.db.dialect)


class LockStoreProbe:
    """PINGs a Redis lock store with redis' asyncio client (one per probe object, on the
    event loop that uses it); Rasa's in-memory lock store is always there."""

    def __init__(self, timeout: float = CHECK_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._clients: Dict[Tuple[Any, ...], Any] = {}

    def _client(self, lock_store: Any) -> Any:
        import redis.asyncio

        # Keyed by the address, not by id(lock_store): a lock store made where a collected
        # one had lived has its id, and would be pinged at the old one's address.
        pool = lock_store.red.connection_pool
        given = pool.connection_kwargs
        address = dict(host=given.get("host", "localhost"), port=given.get("port", 6379), db=given.get("db", 0),
                       username=given.get("username"), password=given.get("password"),
                       ssl=pool.connection_class.__name__ == "SSLConnection")
        key = (asyncio.get_running_loop(), *address.values())
        if key not in self._clients:
            self._clients[key] = redis.asyncio.Redis(
                **address, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        return self._clients[key]

    async def check(self, agent: Any) -> Check:
        from rasa.core.lock_store import InMemoryLockStore, RedisLockStore

        lock_store = getattr(agent, "lock_store", None)
        if lock_store is None:
            return Check("lock_store", False, "no lock store yet (the server is starting)")
        if isinstance(lock_store, InMemoryLockStore):
            return Check("lock_store", True, "in memory")
        if not isinstance(lock_store, RedisLockStore):
            return Check("lock_store", True, f"{type(lock_store).__name__} (not checked)")
        try:
            await asyncio.wait_for(self._client(lock_store).ping(), self.timeout)
        except asyncio.TimeoutError:
            return Check("lock_store", False, f"Redis did not answer within {self.timeout:g}s")
        except Exception as error:
            return Check("lock_store", False, f"Redis is unreachable: {type(error).__name__}: {error}")
        return Check("lock_store", True, "redis")


def verdict(checks: List[Check], stopping: bool = False) -> Tuple[int, Dict[str, Any]]:
    """200 when every check passed, else 503; the body names each check's outcome and
    says whether the server is stopping (then only that is checked)."""
    ready = all(check.ok for check in checks) and not stopping
    body: Dict[str, Any] = {
        "status": "ready" if ready else "not ready",
        "stopping": stopping,
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in checks},
    }
    if not ready:
        body["not_ready"] = [check.name for check in checks if not check.ok]
    return (200 if ready else 503), body

"""Reading and erasing whole conversations in the tracker store that an endpoints file
configures: for trainers (the review command), GDPR exports and erasure, operators.

SQL tracker stores (Rasa's `SQL` type and its subclasses such as
`rasa_plugins.tracker_store.WindowedSQLTrackerStore`, on SQLite or PostgreSQL) are read
and written directly in Rasa's `events` table, with Rasa's own URL building and table
definition; the in-memory store through its dict. Other stores are refused clearly.
"""
import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs, validate_port
from rasa.shared.exceptions import RasaException
from rasa.shared.utils.common import class_from_module_path
from rasa.utils.endpoints import EndpointConfig, read_endpoint_config

CONNECT_TIMEOUT_SECONDS = 10
BUILTIN_STORES = frozenset({"in_memory", "redis", "mongod", "dynamo", "sql"})
EVENTS = SQLTrackerStore.SQLEvent.__table__


class TrackerStoreError(Exception):
    """A configuration or connection problem an operator can fix."""


def read_config(endpoints: Path) -> EndpointConfig:
    """The `tracker_store` section of an endpoints file, `${VAR}`s substituted."""
    if not Path(endpoints).is_file():
        raise TrackerStoreError(f"endpoints file {endpoints} not found")
    try:
        config = read_endpoint_config(str(endpoints), "tracker_store")
    except (RasaException, ValueError) as error:  # e.g. an unset ${VAR}
        hint = " (the Makefile sets the project's defaults, scripts/env.sh)" if "environment variables" in str(error) else ""
        raise TrackerStoreError(f"cannot read {endpoints}: {error}{hint}") from error
    if config is None or not config.type or str(config.type).lower() == "in_memory":
        raise TrackerStoreError(f"{endpoints} configures no persistent tracker_store")
    return config


def is_sql_store(config: EndpointConfig) -> bool:
    kind = str(config.type)
    if kind.lower() in BUILTIN_STORES:
        return kind.lower() == "sql"
    try:
        store_class = class_from_module_path(kind)
    except (ImportError, AttributeError) as error:
        raise TrackerStoreError(f"cannot import the tracker store class {kind!r} ({error}); run from the project root") from error
    return isinstance(store_class, type) and issubclass(store_class, SQLTrackerStore)


def sql_engine(config: EndpointConfig, must_exist: bool = True) -> sa.engine.Engine:
    """An engine built the way SQLTrackerStore builds it, without its side effects (no
    table or database creation, no endless retry while the server is down)."""
    options = dict(config.kwargs)
    try:
        port = validate_port(options.get("port"))
    except RasaException as error:
        raise TrackerStoreError(str(error)) from error
    url = sa.engine.make_url(
        SQLTrackerStore.get_db_url(
            dialect=options.get("dialect", "sqlite"), host=config.url, port=port, db=options.get("db", "rasa.db"),
            username=options.get("username"), password=options.get("password"), query=options.get("query"),
        )
    )
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if must_exist and database and database != ":memory:" and not Path(database).is_file():
            raise TrackerStoreError(
                f"SQLite tracker store {Path(database).resolve()} does not exist "
                "(relative paths are relative to the current directory, as for `rasa run`)"
            )
    kwargs = create_engine_kwargs(url)
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return sa.create_engine(url, **kwargs)


def _sql(config: EndpointConfig) -> sa.engine.Engine:
    if not is_sql_store(config):
        raise TrackerStoreError(f"tracker store type {config.type!r} is not supported here (use an SQL tracker store)")
    return sql_engine(config)


def iter_sql_events(engine: sa.engine.Engine, query: Any) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """(sender_id, event as dict) rows of a query on the events table."""
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(EVENTS.name):
                return  # nobody has written to this store yet
            for sender_id, data in conn.execution_options(stream_results=True, yield_per=500).execute(query):
                try:
                    yield sender_id, json.loads(data)
                except (TypeError, ValueError):
                    continue
    except sa.exc.SQLAlchemyError as error:
        raise TrackerStoreError(f"cannot read the tracker store {engine.url!r}: {error}") from error


def conversation(config: EndpointConfig, sender_id: str) -> List[Dict[str, Any]]:
    """Every event of a conversation, all sessions, oldest first."""
    engine = _sql(config)
    try:
        query = sa.select(EVENTS.c.sender_id, EVENTS.c.data).where(EVENTS.c.sender_id == sender_id).order_by(EVENTS.c.id)
        return [event for _, event in iter_sql_events(engine, query)]
    finally:
        engine.dispose()


def erase_sql(engine: sa.engine.Engine, sender_id: str) -> int:
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table(EVENTS.name):
            return 0
        return conn.execute(EVENTS.delete().where(EVENTS.c.sender_id == sender_id)).rowcount


def erase(config: EndpointConfig, sender_id: str) -> int:
    """Deletes every event of a conversation; returns how many."""
    engine = _sql(config)
    try:
        return erase_sql(engine, sender_id)
    except sa.exc.SQLAlchemyError as error:
        raise TrackerStoreError(f"cannot erase from the tracker store {engine.url!r}: {error}") from error
    finally:
        engine.dispose()


def erase_from_store(store: Any, sender_id: str) -> Optional[int]:
    """Erases a conversation from a live TrackerStore object (the Rasa server's own)."""
    inner = getattr(store, "_tracker_store", store)  # FailSafeTrackerStore wraps the real one
    if isinstance(inner, SQLTrackerStore):
        return erase_sql(inner.engine, sender_id)
    if hasattr(inner, "store") and isinstance(inner.store, dict):  # InMemoryTrackerStore
        return 1 if inner.store.pop(sender_id, None) is not None else 0
    return None


def move_in_store(store: Any, from_sender: str, to_sender: str) -> Optional[int]:
    """Moves a conversation's events to another sender id in a live TrackerStore (two
    contacts found to be one customer): the events keep their order of recording.
    Returns how many moved; None for a store it cannot change."""
    inner = getattr(store, "_tracker_store", store)
    if isinstance(inner, SQLTrackerStore):
        with inner.engine.begin() as conn:
            if not sa.inspect(conn).has_table(EVENTS.name):
                return 0
            return conn.execute(EVENTS.update().where(EVENTS.c.sender_id == from_sender).values(sender_id=to_sender)).rowcount
    if hasattr(inner, "store") and isinstance(inner.store, dict):  # InMemoryTrackerStore: serialised trackers
        moved = inner.store.pop(from_sender, None)
        if moved is None:
            return 0
        if to_sender not in inner.store:
            inner.store[to_sender] = moved
        return 1
    return None


def retention_target() -> Any:
    """The tracker store's events as a retention target (shop.retention): each event by
    its own timestamp. Conversation state set longer ago than the retention period
    (slots, a form) is forgotten with it."""
    from shop.retention import Target

    return Target(EVENTS, "timestamp")


def engine_of(store: Any) -> Optional[sa.engine.Engine]:
    """The engine of a live SQL TrackerStore (the Rasa server's own); None for others."""
    inner = getattr(store, "_tracker_store", store)
    return inner.engine if isinstance(inner, SQLTrackerStore) else None

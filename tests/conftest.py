"""Shared fixtures: databases (SQLite and the PostgreSQL on 127.0.0.1), free ports."""
import os
import socket
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from shop.db import Database
from shop.schema import metadata

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")

os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
# `make test` sources scripts/env.sh: metrics of tests stay in their processes (and out of
# var/metrics) unless a test sets a directory of its own (tests/test_metrics.py).
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"shoptest_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = str(sa.engine.make_url(POSTGRES_URL).set(database=name))
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
        ), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Iterator[Database]:
    """The shop database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    else:
        database = Database(request.getfixturevalue("postgres_url"))
        with database.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'shop.db'}")
    yield database
    database.dispose()

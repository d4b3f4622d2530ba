"""Real services for tests: Redis at GEOTARGET_REDIS_URL (else an embedded server started here), SQLite in a
temporary folder, and PostgreSQL at GEOTARGET_TEST_POSTGRES_URL (default: the local test database). In CI
(``CI=true``) an unreachable PostgreSQL fails the run instead of skipping."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from api.main import create_app
from geotarget.runtime import Runtime
from geotarget.settings import Settings
from geotarget.store import keys, models
from geotarget.store.embedded_redis import EmbeddedRedis
from tests.object_store import S3Server, seaweedfs
from tests.servers import UNLIMITED
from tests.spark_cluster import spark_standalone

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ADMIN_KEY = "test-admin-key"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("GEOTARGET_REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the session; each test takes a prefix of its own."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture(scope="session")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Spark standalone master with one worker for the session (``spark://127.0.0.1:<port>``)."""
    with spark_standalone(tmp_path_factory.mktemp("spark")) as master:
        yield master


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private schema in the test database, dropped afterwards."""
    base = os.environ.get("GEOTARGET_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    schema = f"gt_test_{secrets.token_hex(4)}"
    try:
        engine = sqlalchemy.create_engine(base, connect_args={"connect_timeout": 3})
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {base}: {exc}")
        pytest.skip(f"no PostgreSQL at {base} (set GEOTARGET_TEST_POSTGRES_URL)")
    separator = "&" if "?" in base else "?"
    yield f"{base}{separator}options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'geotarget.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:  # each test starts from empty tables
        connection.execute(
            sqlalchemy.text(f"DROP TABLE IF EXISTS {', '.join(models.Base.metadata.tables)}, alembic_version CASCADE")
        )
    engine.dispose()
    return url


def make_settings(tmp_path: Path, redis_url: str, database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "admin_key": ADMIN_KEY,
        "redis_url": redis_url,
        "database_url": database_url,
        "redis_prefix": f"t{secrets.token_hex(4)}",
        "sync_poll_s": 0.1,
        "consume_in_serve": False,  # tests drive the consumer themselves (see test_events_and_reports.py)
        "deliver_in_serve": False,  # and the trigger loops (see test_webhooks.py)
        "cpu_workers": 0,  # fence work in the test thread; tests of the pool itself turn it on
        **UNLIMITED,  # tests send bursts from one key; tests/test_rate_limits.py sets its own limits
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, database_url: str) -> Settings:
    return make_settings(tmp_path, redis_url, database_url)


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    opened = Runtime.open(settings)
    opened.redis.set(keys.devices_indexed(settings.key_prefix()), "1")  # new: no key is older than registries
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings, runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(settings, runtime)) as test_client:
        yield test_client


@dataclass
class MerchantKey:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def new_merchant(client: TestClient, name: str = "Café Tejo") -> MerchantKey:
    response = client.post("/v1/merchants", json={"name": name, "timezone": "Europe/Lisbon"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    return MerchantKey(body["id"], body["api_key"])


@pytest.fixture
def cafe(client: TestClient) -> MerchantKey:
    return new_merchant(client, "Café Tejo")


@pytest.fixture
def bakery(client: TestClient) -> MerchantKey:
    return new_merchant(client, "Padaria Lisboa")


@pytest.fixture
def exchange(client: TestClient) -> dict[str, str]:
    """The headers of an ad exchange's key (OpenRTB bid requests)."""
    made = client.post("/v1/apps", json={"name": "Exchange", "role": "exchange"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['api_key']}"}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"the shared test data folder {SHARED_DATA} is missing in CI")
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture
def with_triggers(tmp_path: Path, redis_url: str, database_url: str) -> Iterator[tuple[TestClient, Runtime]]:
    """A server whose trigger and delivery loops run, allowed to reach loopback, retrying and taking over
    quickly, reporting on a single device."""
    settings = make_settings(
        tmp_path,
        redis_url,
        database_url,
        webhook_allow_private=True,
        webhook_retry_base_s=0.2,
        webhook_claim_idle_s=1,
        report_min_devices=1,
    )
    runtime = Runtime.open(settings, deliver=True)
    with TestClient(create_app(settings, runtime)) as client:
        yield client, runtime
    runtime.close()

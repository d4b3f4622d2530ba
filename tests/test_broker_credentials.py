"""Broker deliveries keep tenants apart: a webhook with a wrong password never publishes on a connection another
tenant's webhook opened with the right one (AMQP, MQTT and NATS, each against a real broker that checks
passwords), and an AMQP connection dropped while idle is made again before the next send."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from geotarget.store.transports import Transports
from tests.servers import free_port

HEADERS = {"Geotarget-Event-Id": "evt_1", "Geotarget-Event-Type": "enter"}


def needs(binary: str) -> str:
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is required in CI")
        pytest.skip(f"no {binary} on this machine")
    return found


def wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, "the broker exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture
def mqtt_with_passwords(tmp_path: Path) -> Iterator[int]:
    """A private Mosquitto that refuses anonymous clients and checks passwords."""
    passwords = tmp_path / "passwords"
    subprocess.run([needs("mosquitto_passwd"), "-b", "-c", str(passwords), "tenant", "right"], check=True)
    passwords.chmod(0o600)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    user = getpass.getuser()  # mosquitto started as root would switch to a user that cannot read the file
    config.write_text(f"user {user}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n")
    with broker([needs("mosquitto"), "-c", str(config)], port):
        yield port


@pytest.fixture
def nats_with_passwords() -> Iterator[int]:
    port = free_port()
    with broker(
        [needs("nats-server"), "-a", "127.0.0.1", "-p", str(port), "--user", "tenant", "--pass", "right"], port
    ):
        yield port


@contextmanager
def broker(command: list[str], port: int) -> Iterator[None]:
    """A private broker process, listening on ``port`` while the block runs."""
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        wait_port(port, process)
        yield
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def transports() -> Iterator[Transports]:
    sender = Transports(allow_private=True, timeout_s=5)
    yield sender
    sender.close()


def sends(transports: Transports, url: str) -> bool:
    return transports.send(url, HEADERS, b'{"id": "evt_1"}').delivered


def test_a_wrong_amqp_password_never_rides_on_another_tenants_connection(transports):
    assert sends(transports, "amqp://guest:guest@127.0.0.1:5672/amq.topic")
    for _ in range(3):
        assert not sends(transports, "amqp://guest:WRONG@127.0.0.1:5672/amq.topic")
    assert sends(transports, "amqp://guest:guest@127.0.0.1:5672/amq.topic")


@pytest.mark.slow
def test_a_wrong_mqtt_password_never_rides_on_another_tenants_connection(transports, mqtt_with_passwords):
    port = mqtt_with_passwords
    assert sends(transports, f"mqtt://tenant:right@127.0.0.1:{port}/shops/enter")
    for _ in range(3):
        assert not sends(transports, f"mqtt://tenant:WRONG@127.0.0.1:{port}/shops/enter")
    assert not sends(transports, f"mqtt://127.0.0.1:{port}/shops/enter")  # no password at all


def test_a_wrong_nats_password_never_rides_on_another_tenants_connection(transports, nats_with_passwords):
    port = nats_with_passwords
    assert sends(transports, f"nats://tenant:right@127.0.0.1:{port}/shops.enter")
    for _ in range(3):
        assert not sends(transports, f"nats://tenant:WRONG@127.0.0.1:{port}/shops.enter")
    assert not sends(transports, f"nats://127.0.0.1:{port}/shops.enter")


def test_an_amqp_connection_dropped_while_idle_is_made_again_before_the_next_send(transports):
    rabbitmqctl = needs("rabbitmqctl")
    url = "amqp://guest:guest@127.0.0.1:5672/amq.topic"
    assert sends(transports, url)
    subprocess.run([rabbitmqctl, "close_all_connections", "idle connection test"], check=True, capture_output=True)
    time.sleep(0.5)
    sent = transports.send(url, HEADERS, b'{"id": "evt_2"}')
    assert sent.delivered, sent.error

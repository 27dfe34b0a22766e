"""The production front (deploy/nginx.conf) holds slow clients off the web workers.

gunicorn with one worker of two threads, production settings, the Flex sandbox as the Flex
API. Clients that send headers and a few bytes of a POST body, then nothing more, hold a
gunicorn thread each when they reach it directly: /healthz gets no answer. Through nginx,
with the repository's config, 40 such clients change nothing: /healthz and a whole checkout
answer. (No sleeps: the slow clients simply never finish while the checks run.) And the
merchant login is rate-limited per address.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import requests

from tests.support import (
    PRODUCTION,
    ROOT,
    Shopper,
    flex_settings,
    free_port,
    running,
    wait_for,
)

pytestmark = pytest.mark.slow  # starts gunicorn and nginx

SLOW_CLIENTS = 40
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module")
def gunicorn(sandbox, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("front")
    port = free_port()
    env = {**os.environ, **PRODUCTION, **flex_settings(sandbox), "TRUSTED_PROXIES": "1",
           "DATABASE": str(tmp_path / "shop.sqlite"), "FLEX_RELAY": "0",
           "PROCESSOR_LATENCY_MS": "0", "FLASK_SKIP_DOTENV": "1"}
    with open(tmp_path / "gunicorn.log", "ab") as log, running(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "2", "-b",
             f"127.0.0.1:{port}", "app:create_app()"], f"http://127.0.0.1:{port}/healthz",
            env=env, stdout=log, stderr=subprocess.STDOUT):
        yield port


@pytest.fixture
def nginx(gunicorn, tmp_path):
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed: apt-get install nginx (.ci/run does)")
    http, https = free_port(), free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(tmp_path / "tls.key"), "-out",
                    str(tmp_path / "tls.pem")], check=True, capture_output=True)
    site = _replace((ROOT / "deploy" / "nginx.conf").read_text(), {
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{gunicorn};",
        "/etc/ssl/certs/shop.example.com.pem": str(tmp_path / "tls.pem"),
        "/etc/ssl/private/shop.example.com.key": str(tmp_path / "tls.key"),
    })
    (tmp_path / "shop.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(f"""
        {"user root;" if os.geteuid() == 0 else ""}
        daemon off;
        worker_processes 1;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/nginx-error.log warn;
        events {{ worker_connections 512; }}
        http {{
            access_log off;
            client_body_temp_path {tmp_path}/body;
            proxy_temp_path {tmp_path}/proxy;
            include {tmp_path}/shop.conf;
        }}
    """)
    process = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: _listening(https) or process.poll() is not None), "nginx"
        assert process.poll() is None, process.stderr.read().decode()
        yield https
    finally:
        process.terminate()
        process.wait(15)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _replace(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def slow_clients(port: int, count: int, tls: bool) -> list[socket.socket]:
    """Connections that each send a POST's headers and 10 of its 20000 body bytes, then
    stop: they would send the rest at a byte every few seconds."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if tls:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(b"POST /checkout HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n"
                     b"Content-Length: 20000\r\n\r\ncsrf_token")
        held.append(sock)
    return held


def test_slow_clients_reaching_gunicorn_directly_hold_its_threads(gunicorn):
    """Why the front exists: two slow bodies take both threads of the worker."""
    held = slow_clients(gunicorn, 2, tls=False)
    try:
        with pytest.raises(requests.Timeout):
            requests.get(f"http://127.0.0.1:{gunicorn}/healthz", timeout=2)
    finally:
        for sock in held:
            sock.close()


def test_behind_nginx_slow_clients_cannot_starve_the_shop(nginx):
    held = slow_clients(nginx, SLOW_CLIENTS, tls=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the test's self-signed certificate
            health = requests.get(f"https://127.0.0.1:{nginx}/healthz",
                                  verify=False, timeout=5)  # noqa: S501 - self-signed
            assert health.status_code == 200 and health.text == "ok\n"
            shopper = Shopper(f"https://127.0.0.1:{nginx}")
            shopper.http.verify, shopper.http.trust_env = False, False
            # A browser sends it, and over HTTPS the CSRF check requires it (same origin).
            shopper.http.headers["Referer"] = f"{shopper.url}/"
            order_id = shopper.pay("4242424242424242")
            page = shopper.http.get(f"{shopper.url}/orders/{order_id}", timeout=10).text
        assert 'role="status" id="order-status"' in page and ">Paid<" in page
    finally:
        for sock in held:
            sock.close()


def test_nginx_slows_down_password_guessing(nginx):
    """The login page answers one address 10 times a minute, in bursts of 5: then 429."""
    with warnings.catch_warnings(), requests.Session() as http:
        warnings.simplefilter("ignore")  # the test's self-signed certificate
        http.verify, http.trust_env = False, False
        answers = [http.get(f"https://127.0.0.1:{nginx}/login", timeout=5).status_code
                   for _ in range(8)]
    assert answers[:5] == [200] * 5  # the burst (the first may also use the rate's token)
    assert answers[-1] == 429

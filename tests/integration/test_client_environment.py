"""The client reads proxy settings and the CA bundle from the environment once, when it is
created, verifies TLS with that bundle, and never lets a ~/.netrc entry replace its bearer
token."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time

import pytest
from werkzeug.wrappers import Request, Response

from flex import FlexClient, FlexConfig
from flex.errors import FlexUnavailableError
from tests.support import APPROVED, LoopbackServer, calls, card, flex_config

CARD = card(APPROVED)


def test_a_netrc_entry_for_the_flex_host_does_not_replace_the_bearer(
        fresh_sandbox, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    client = FlexClient(flex_config(fresh_sandbox))
    try:
        vaulted = client.tokenize(CARD)
    finally:
        client.close()
    assert vaulted.last4 == "4242"
    assert [c["status"] for c in calls(fresh_sandbox, "tokenize")] == [200]


def test_proxy_from_the_environment_is_used_unless_no_proxy_covers_the_host(
        fresh_sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on port 9
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassed = FlexClient(flex_config(fresh_sandbox))
    monkeypatch.setenv("NO_PROXY", "example.com")
    proxied = FlexClient(flex_config(fresh_sandbox, deadline=1.0, max_retries=0))
    monkeypatch.delenv("HTTP_PROXY")  # read once at creation: later changes do not matter
    try:
        assert bypassed.tokenize(CARD).last4 == "4242"
        with pytest.raises(FlexUnavailableError, match="connection"):
            proxied.tokenize(CARD)  # sent to the proxy, which is not there
    finally:
        bypassed.close()
        proxied.close()


@pytest.fixture
def tls_server(tmp_path):
    """A loopback HTTPS server with a certificate made for 127.0.0.1 (openssl), answering
    every request, on kept-alive connections, with a transmit's answer. Yields (its API URL,
    the certificate's file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    @Request.application
    def transmit_answer(request: Request) -> Response:
        return Response(b'{"transmitId": "t-1"}', 200, content_type="application/json")

    server = LoopbackServer(transmit_answer, ssl_context=context)
    yield f"{server.url}/v1", cert
    server.stop()


def test_tls_is_verified_against_the_ca_bundle_from_the_environment(tls_server, monkeypatch):
    api_url, cert = tls_server
    config = FlexConfig(api_url=api_url, app_key="k", app_secret="s", mid="m",
                        tokenization_key="t", deadline=2.0, max_retries=0)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    trusting = FlexClient(config)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # read once, at creation
    default = FlexClient(config)  # the usual bundle, which never signed this certificate
    try:
        trusting._token, trusting._token_expires = "tok", time.time() + 3600
        default._token, default._token_expires = "tok", time.time() + 3600
        assert trusting.transmit({}).transmit_id == "t-1"
        assert trusting.transmit({}).transmit_id == "t-1"  # on the same kept-alive connection
        with pytest.raises(FlexUnavailableError, match="TLS handshake failed"):
            default.transmit({})
    finally:
        trusting.close()
        default.close()

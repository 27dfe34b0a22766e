"""Safe to run in production as it stands: the cart, file permissions, the merchant login,
who may see an order, the start-up Flex check, database restarts, plain-HTTP warnings."""

from __future__ import annotations

import re
import sqlite3
import stat
import time
import uuid

import pytest
import requests
from click.testing import CliRunner
from werkzeug.security import check_password_hash

from app import create_app
from flex_sandbox import shared
from shop.backoffice import access
from shop.services import ConfigError
from shop.storage import db
from tests.support import (
    APPROVED,
    MERCHANT_PASSWORD,
    PRODUCTION,
    RESCUED,
    Shopper,
    calls,
    clear_faults,
    close_app,
    db_rows,
    free_port,
    hidden,
    pay,
    set_fault,
    sign_in,
    status_label,
    wait_for,
)

TAMPERED_CARTS = {
    "a billion mugs": {"mug": 10**9},
    "negative quantity": {"mug": -3, "tee": 1},
    "quantity as text": {"mug": "5", "tee": 1},
    "unknown product": {"gold-bar": 1, "tee": 1},
    "not a mapping": ["mug", 1],
}


@pytest.mark.parametrize("case", TAMPERED_CARTS, ids=list(TAMPERED_CARTS))
def test_a_tampered_cart_cookie_is_validated_on_read(client, case):
    """The demo's key is public, so anyone can sign a cart: it is checked on every read,
    not only on add. Only lines this shop could have written are shown, priced and paid."""
    with client.session_transaction() as session:
        session["cart"] = TAMPERED_CARTS[case]
    cart = client.get("/cart").text
    assert "18,000,000" not in cart and "-$" not in cart
    expected = 0 if case in ("a billion mugs", "not a mapping") else 1
    assert f"Cart ({expected})" in cart
    if expected:
        assert Shopper(client).checkout_form()["expected_total_cents"] == "2900"  # one tee


def test_a_cart_cookie_with_too_many_lines_keeps_one_per_product(client):
    Shopper(client).fill_cart("mug", 1)
    with client.session_transaction() as session:
        session["cart"] = {**{f"x{i}": 1 for i in range(200)}, "mug": 10, "tee": 10}
    assert "Cart (20)" in client.get("/cart").text


# --- the merchant login and who may see an order --------------------------------------------

@pytest.fixture
def production(make_app, tmp_path):
    """Makes test clients of one production node: each is a browser of its own."""
    def client():
        return node.test_client()

    node = make_app(DATABASE=str(tmp_path / "live.sqlite"), **PRODUCTION)
    return client


def test_a_stranger_gets_no_back_office_and_no_one_elses_order(production, fresh_sandbox):
    shopper, stranger = production(), production()
    order_id, _ = pay(shopper, RESCUED)
    stranger_page = stranger.get("/").text
    csrf = hidden(stranger_page, "csrf_token")  # a valid token of the stranger's own session

    assert stranger.get(f"/orders/{order_id}").status_code == 404
    for path in ("/orders", "/flex", "/flex/webhooks"):
        response = stranger.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next="), path
    for action in ("refund", "capture", "cancel"):
        response = stranger.post(f"/orders/{order_id}/{action}",
                                 data={"csrf_token": csrf, "amount": "18.00"})
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert calls(fresh_sandbox, "refund") == []
    assert "Orders" not in stranger_page and "Merchant sign-in" in stranger_page


def test_the_shopper_sees_their_own_order_without_the_back_office(production, fresh_sandbox):
    shopper = production()
    order_id, page = pay(shopper, RESCUED)
    assert status_label(page) == "Rescued by Flex"
    assert "Refund amount" not in page and "Flex timeline" not in page
    assert "orderSessionKey" not in page and "Webhooks from Flex" not in page
    assert "Talking to the" not in page  # configuration; Flex's SenseJS script is public:
    assert page.count(fresh_sandbox.url) == page.count(f"{fresh_sandbox.url}/widget.js")
    assert shopper.get("/orders").status_code == 302  # the list is the merchant's


def test_the_signed_link_opens_that_order_for_whoever_holds_it(production, fresh_sandbox):
    first_id, first_page = pay(production(), APPROVED)
    second_id, _ = pay(production(), APPROVED)
    link = re.search(r'href="([^"]+)">private link<', first_page)[1].replace("&amp;", "&")
    assert f"/orders/{first_id}?key=" in link

    other_device = production()
    assert status_label(other_device.get(link).text) == "Paid"
    assert other_device.get(f"/orders/{first_id}").status_code == 200  # remembered
    key = link.split("key=", 1)[1]
    assert other_device.get(f"/orders/{second_id}?key={key}").status_code == 404
    payload, signature = key.rsplit(".", 1)
    forged = f"{payload}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"  # a data bit
    assert production().get(f"/orders/{first_id}?key={forged}").status_code == 404


def test_the_merchant_signs_in_to_the_back_office(production, fresh_sandbox):
    shopper, merchant = production(), production()
    order_id, _ = pay(shopper, RESCUED)
    assert sign_in(merchant, "not the password").status_code == 401
    assert merchant.get("/orders").status_code == 302
    signed_in = sign_in(merchant)
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/orders"

    assert order_id[:8] in merchant.get("/orders").text
    assert merchant.get("/flex").status_code == 200
    assert merchant.get("/flex/webhooks").status_code == 200
    page = merchant.get(f"/orders/{order_id}").text
    assert "Flex timeline" in page and "Refund amount" in page
    refunded = merchant.post(f"/orders/{order_id}/refund", follow_redirects=True,
                             data={"csrf_token": hidden(page, "csrf_token"), "amount": "9.00"})
    assert "Refunded $9.00." in refunded.text
    assert len(calls(fresh_sandbox, "refund")) == 1

    merchant.post("/logout", data={"csrf_token": hidden(refunded.text, "csrf_token")})
    assert merchant.get("/orders").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example/x",
                                    "https://evil.example/x", "/flex"])
def test_login_redirects_only_to_this_site(production, fresh_sandbox, target):
    merchant = production()
    page = merchant.get("/login", query_string={"next": target}).text
    response = merchant.post("/login", query_string={"next": target}, data={
        "csrf_token": hidden(page, "csrf_token"), "username": "merchant",
        "password": MERCHANT_PASSWORD})
    assert response.headers["Location"] == ("/flex" if target == "/flex" else "/orders")


@pytest.mark.parametrize("missing", ["MERCHANT_USERNAME", "MERCHANT_PASSWORD_HASH"])
def test_production_refuses_to_start_without_the_merchant_login(make_app, missing):
    with pytest.raises(ConfigError, match=f"^{missing} is missing"):
        make_app(**{**PRODUCTION, missing: ""})


def test_production_refuses_a_plain_password(make_app):
    with pytest.raises(ConfigError, match="MERCHANT_PASSWORD_HASH must be a password hash"):
        make_app(**{**PRODUCTION, "MERCHANT_PASSWORD_HASH": MERCHANT_PASSWORD})


def test_demo_mode_is_open_and_says_so(client, fresh_sandbox):
    order_id, _ = pay(client, RESCUED)
    assert client.get("/orders").status_code == 200
    assert "Flex timeline" in client.get(f"/orders/{order_id}").text
    home = client.get("/").text
    assert "Demo mode: the back office (orders, refunds, Flex calls) is open to everyone" in home
    assert "Merchant sign-in" not in home


def test_hash_password_command_prints_a_hash_the_login_accepts():
    """`python -m shop.backoffice.access`: runs without the app, so a production .env missing
    the hash does not stop the command that makes it."""
    result = CliRunner().invoke(access.hash_password, input="s3cret pass\ns3cret pass\n")
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("MERCHANT_PASSWORD_HASH='scrypt:") and "s3cret" not in line
    assert check_password_hash(line.split("'")[1], "s3cret pass")


# --- start-up checks the Flex credentials; the shopper never sees the reason ---------------

def test_production_refuses_to_start_when_flex_refuses_the_credentials(make_app, caplog):
    with pytest.raises(ConfigError, match="refused FLEX_APP_KEY/FLEX_APP_SECRET"):
        make_app(**PRODUCTION, FLEX_APP_SECRET="changeme")


def test_production_starts_with_a_warning_when_flex_is_unreachable(make_app, fresh_sandbox,
                                                                    caplog):
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    app = make_app(**PRODUCTION, FLEX_API_URL=closed, FLEX_DEADLINE=0.5)
    assert app.test_client().get("/healthz").status_code == 200
    assert "could not reach Flex" in caplog.text and "starting anyway" in caplog.text


def test_the_shopper_never_sees_why_flex_failed_the_merchant_does(make_app, fresh_sandbox):
    """Credentials revoked after start-up: the declined checkout's page tells the shopper
    only what they must know; the back office shows the reason."""
    node = make_app(**PRODUCTION)
    shopper, merchant = node.test_client(), node.test_client()
    for browser in (shopper, merchant):
        browser.environ_base["wsgi.url_scheme"] = "https"
    requests.post(f"{fresh_sandbox.url}/_sandbox/tokens/expire", timeout=5).raise_for_status()
    set_fault(fresh_sandbox, "token", status=400)  # Flex now refuses the AppKey/AppSecret
    order_id, page = pay(shopper, "4000000000009995")
    assert status_label(page) == "Declined"
    assert "AppKey" not in page and "AppSecret" not in page and "Flex gave no answer" not in page
    clear_faults(fresh_sandbox)
    sign_in(merchant)
    assert "Flex refused the AppKey/AppSecret" in merchant.get(f"/orders/{order_id}").text


# --- files ----------------------------------------------------------------------------------

def test_the_database_and_its_folder_are_private_to_the_service_user(make_app, tmp_path,
                                                                      fresh_sandbox):
    database = tmp_path / "shop.sqlite"
    database.touch(mode=0o644)  # an existing database from before keeps no wider mode
    app = make_app(DATABASE_URL="", DATABASE=str(database))
    client = app.test_client()
    pay(client, APPROVED)  # the WAL and shared memory exist once something was written
    files = [database, *(tmp_path / f"shop.sqlite-{end}" for end in ("wal", "shm"))]
    assert all(file.exists() for file in files)
    for file in files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_the_instance_folder_is_private(tmp_path):
    """The default database lives in the instance folder, beside the webhook key and the
    sandbox's files: 0700. A folder the operator named (DATABASE=/srv/x/shop.sqlite) is
    theirs, left as it is."""
    instance, elsewhere = tmp_path / "instance", tmp_path / "srv"
    for folder in (instance, elsewhere):
        folder.mkdir(mode=0o755)
    db.make_private(f"sqlite:///{instance / 'shop.sqlite'}", str(instance))
    db.make_private(f"sqlite:///{elsewhere / 'shop.sqlite'}", str(tmp_path / "missing"))
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o755
    assert stat.S_IMODE((elsewhere / "shop.sqlite").stat().st_mode) == 0o600


# --- database restarts: retries, never a 500 on a charged checkout --------------------------

def _after_the_processor_answers(app, monkeypatch, action) -> None:
    """Runs `action` once the processor has answered a checkout, before the shop writes the
    result: the moment the issue's 500s happened."""
    processor = app.extensions["services"].processor
    authorize = processor.authorize

    def authorize_then_act(*args, **kwargs):
        result = authorize(*args, **kwargs)
        action()
        return result

    monkeypatch.setattr(processor, "authorize", authorize_then_act)


@pytest.mark.parametrize("card", [APPROVED, RESCUED])
def test_a_postgresql_restart_mid_checkout_costs_a_retry_not_a_500(
        make_app, postgres_cluster, postgres_url, fresh_sandbox, monkeypatch, caplog, card):
    app = make_app(DATABASE_URL=postgres_url)
    client = app.test_client()
    pay(client, APPROVED)  # every pool has live connections, now killed by the restart
    _after_the_processor_answers(app, monkeypatch, postgres_cluster.restart)
    order_id, page = pay(client, card)  # asserts the 302 to the order page
    assert status_label(page) == ("Paid" if card == APPROVED else "Rescued by Flex")
    assert "database unavailable" in caplog.text  # it was retried, not lucky
    assert db_rows(postgres_url, "SELECT outcome FROM orders WHERE id = ?", order_id) == [
        ("paid" if card == APPROVED else "rescued",)]


def test_a_read_on_a_connection_lost_in_a_restart_is_sent_again(postgres_cluster,
                                                                 postgres_url, caplog):
    db.migrate(postgres_url)
    database = db.Database(postgres_url, pool_size=1)
    try:
        with database.connection() as conn:
            conn.execute("SELECT 1").fetchone()
            postgres_cluster.restart()  # the connection this request holds dies
            assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    finally:
        database.close()
    assert "database unavailable" in caplog.text


def test_a_database_down_past_the_retries_says_we_are_confirming_and_recovery_settles_it(
        make_app, postgres_cluster, postgres_url, fresh_sandbox, monkeypatch):
    app = make_app(DATABASE_URL=postgres_url, DATABASE_RETRY_SECONDS=0.5)
    client = app.test_client()
    _after_the_processor_answers(app, monkeypatch, postgres_cluster.pause)
    form = Shopper(client).ready_to_pay()
    try:
        answer = client.post("/checkout", data=form)
    finally:
        postgres_cluster.resume()
    assert answer.status_code == 202, answer.text[:300]
    assert "We are confirming your payment" in answer.text
    assert "do not pay again" in answer.text
    assert "Traceback" not in answer.text and "psycopg" not in answer.text

    order_id = form["checkout_id"]
    assert status_label(client.get(f"/orders/{order_id}").text) == "Awaiting confirmation"
    report = app.extensions["services"].sweep.run(ahead=3600)  # recovery, brought forward
    assert order_id in [item.order_id for item in report.settled]
    assert status_label(client.get(f"/orders/{order_id}").text) == "Paid"


def test_a_checkout_that_never_got_its_order_says_nothing_was_charged(client, fresh_sandbox):
    """The database was down before the order row (which comes before the charge) was
    written: the confirming page's link then tells the shopper nothing was charged."""
    checkout_id = Shopper(client).ready_to_pay()["checkout_id"]
    with client.session_transaction() as session:
        session["orders"] = [checkout_id]  # remembered by the checkout that then failed
    page = client.get(f"/orders/{checkout_id}")
    assert page.status_code == 404
    assert "stopped before your card was charged" in page.text
    assert "Cart (1)" in page.text
    assert client.get(f"/orders/{uuid.uuid4()}").status_code == 404


def test_sqlite_locked_is_retried_in_the_storage_layer(tmp_path, monkeypatch):
    """Another process holds SQLite's write lock past the busy timeout: the transaction
    begins again after a pause (here the other writer commits during the first pause),
    instead of failing with "database is locked"."""
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    db.migrate(url)
    database = db.Database(url)
    other = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    pauses = []

    def pause_while_the_other_commits(seconds):
        pauses.append(seconds)
        other.execute("COMMIT")

    monkeypatch.setattr(db, "_pause", pause_while_the_other_commits)
    with database.connection() as conn:
        conn.raw.execute("PRAGMA busy_timeout = 0")  # "locked" at once, not after 10 s
        other.execute("BEGIN IMMEDIATE")
        with conn:
            conn.execute("INSERT INTO webhook_rejections (reason, count, last_at)"
                         " VALUES (?, ?, ?)", ("test", 1, 0.0))
    other.close()
    assert pauses == [db.FIRST_PAUSE]
    assert db_rows(url, "SELECT reason FROM webhook_rejections") == [("test",)]


def test_a_database_that_stays_locked_raises_database_unavailable(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    db.migrate(url)
    database = db.Database(url, retry_seconds=0.2)
    other = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    pauses = []
    monkeypatch.setattr(db, "_pause", pauses.append)
    with database.connection() as conn, pytest.raises(db.DatabaseUnavailable):
        conn.raw.execute("PRAGMA busy_timeout = 0")
        with conn:
            pass
    other.close()
    assert pauses and sum(pauses) <= 0.2


# --- production over plain HTTP says why forms fail -------------------------------------------

def test_a_production_request_over_plain_http_is_logged_once(make_app, fresh_sandbox, caplog):
    node = make_app(**PRODUCTION)
    plain, proxied, secure = node.test_client(), node.test_client(), node.test_client()
    secure.get("/", base_url="https://localhost")
    proxied.get("/", headers={"X-Forwarded-Proto": "https"})
    assert "plain HTTP" not in caplog.text
    plain.get("/")
    plain.get("/cart")
    warnings = [r.message for r in caplog.records if "plain HTTP" in r.message]
    assert len(warnings) == 1 and "Form expired" in warnings[0]


def test_no_plain_http_warning_in_the_demo(client, fresh_sandbox, caplog):
    client.get("/")
    assert "plain HTTP" not in caplog.text


# --- demo: the embedded sandbox is restarted when it dies -------------------------------------

@pytest.mark.slow  # the embedded sandbox process, kill -9
def test_the_demo_restarts_a_killed_sandbox_and_checkout_works_again(tmp_path):
    app = create_app({"TESTING": True, "DATABASE": str(tmp_path / "shop.sqlite"),
                      "FLEX_RELAY": False, "PROCESSOR_LATENCY_MS": 0})
    sandbox = app.extensions["services"].sandbox
    try:
        client = app.test_client()
        assert status_label(pay(client, RESCUED)[1]) == "Rescued by Flex"
        url, first = sandbox.url, sandbox.process

        killed_at = time.monotonic()
        first.kill()  # kill -9: no goodbye, its locks go with it
        first.wait(10)
        assert wait_for(lambda: sandbox.restarts == 1 and shared.running_url(tmp_path) == url)
        order_id, page = pay(client, RESCUED)
        recovered_in = time.monotonic() - killed_at
        assert status_label(page) == "Rescued by Flex", page
        assert sandbox.process.pid != first.pid
        print(f"checkout rescued again {recovered_in:.2f} s after the kill")
        assert (tmp_path / shared.URL_FILE).read_text().strip() == url  # the same URL
    finally:
        close_app(app)
        sandbox.leave()
        if sandbox.process:
            sandbox.process.terminate()
            sandbox.process.wait(10)


def test_a_production_checkout_shows_no_test_cards(production, client, fresh_sandbox):
    shopper = Shopper(production())
    shopper.fill_cart()
    page = shopper.get("/checkout")
    assert "Card number" in page and "Use test card" not in page  # real shoppers type a card
    Shopper(client).fill_cart()
    assert "Use test card 4000 0000 0000 0002" in client.get("/checkout").text  # the demo has them

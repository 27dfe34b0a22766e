"""Flex webhook verification and parsing: Flex's published signed example, then every way a
delivery can be forged, replayed, stale or unreadable."""

from __future__ import annotations

import json
import re
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest

from flex.webhooks import (
    EventType,
    MemoryNonceStore,
    WebhookEvent,
    WebhookRejected,
    WebhookUnreadable,
    event_id_for,
    parse,
    sign,
    verify,
)

# Flex's published signed example (its webhook docs), verbatim.
KEY = "XRmKBxG5uvt1qWzqvp+T6CAbTo0MB89GTxXZD5cHA56RP7Mj4NbnHQOR1Y8uorUU9YQz8ujaVRUdm9vTSkPZSw=="
HOST = "fctestwebhook.free.beeceptor.com"
DATE = "Mon, 20 Mar 2023 17:16:40 GMT"
NONCE = "5f1c2de28a76457c9cb79d1740f2260a"
BODY = (b'{"Event":"order.completed","TimeStamp":"2023-03-20T17:16:40.898703Z","EventData":null,'
        b'"ExternalOrderId":"a9735210-1349-49bf-bfde-b737dd07872a",'
        b'"OrderId":"ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429","ConfirmationId":"22ACD1D9",'
        b'"IsTestMode":true,"IsResent":false}')
CONTENT_HASH = ("pLs0Op5VWqQM3ZIumqC2NP6MDqcnwFN1znp/oCuw9LcYd8PtvLC8ProyPg8ZDadsRc36NskT3QGKn/"
                "PkNqwWfg==")
SIGNATURE = ("+HXN8ZewgINLk+uC/UI92HSWmLK7gZOECPxOGEM91ATyfyzScMF/+osEK5B0UjO7OFqahDvesSo8jmUWM"
             "ZtQnA==")
HEADERS = {
    "host": HOST,
    "x-fc-nonce": NONCE,
    "x-fc-date": DATE,
    "x-fc-content-sha512": CONTENT_HASH,
    "x-fc-authorization": ("HMAC-SHA512 SignedHeaders=x-fc-nonce;x-fc-date;host;"
                           f"x-fc-content-sha512&Signature={SIGNATURE}"),
}
SENT = datetime(2023, 3, 20, 17, 16, 40, tzinfo=UTC)
NOW = SENT.timestamp() + 20  # received 20 s after Flex signed it
OTHER_KEY = "c2Vjb25kLWtleS1ub3QtdGhlLW9uZS1mbGV4LWdhdmUtdXM="


def store() -> MemoryNonceStore:
    """A nonce store on the tests' clock (it forgets nonces by its own clock)."""
    return MemoryNonceStore(clock=lambda: NOW)


def check(body: bytes = BODY, headers: dict | None = None, key: str = KEY, *, now: float = NOW,
          nonces: MemoryNonceStore | None = None) -> WebhookEvent:
    """verify() at the tests' clock, with a fresh nonce store unless one is given."""
    return verify(body, HEADERS if headers is None else headers, key, now=now,
                  nonces=store() if nonces is None else nonces)


def refused(body: bytes = BODY, headers: dict | None = None, key: str = KEY, **kw) -> str:
    """The reason a delivery is refused; checks that the reason leaks nothing secret."""
    with pytest.raises(WebhookRejected) as caught:
        check(body, headers, key, **kw)
    reason = caught.value.reason
    assert str(caught.value) == reason
    for secret in (body.decode(errors="replace"), key, SIGNATURE, "22ACD1D9"):
        assert not secret or secret not in reason
    return reason


def event_body(**fields) -> bytes:
    """A Flex event body with `fields` changed; a field given as ... is left out."""
    event = {"Event": "order.refunded", "TimeStamp": "2026-11-25T10:00:00.123456Z",
             "EventData": None, "ExternalOrderId": "shop-order-1", "OrderId": "flex-key-1",
             "ConfirmationId": "0A1B2C3D", "IsTestMode": True, "IsResent": False}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def signed(body: bytes, key: str = KEY, **kw) -> dict[str, str]:
    """The headers Flex would send with `body`, dated SENT."""
    return sign(body, key, HOST, date=SENT, **kw)


# --- Flex's published example -------------------------------------------------------------

def test_published_example_verifies_and_parses():
    event = check()
    assert event == WebhookEvent(
        event_id=event.event_id,
        event_type=EventType.ORDER_COMPLETED,
        timestamp=datetime(2023, 3, 20, 17, 16, 40, 898703, tzinfo=UTC),
        order_id="ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429",
        external_order_id="a9735210-1349-49bf-bfde-b737dd07872a",
        confirmation_id="22ACD1D9",
        is_test_mode=True,
        is_resent=False,
        event_data=None,
    )
    assert re.fullmatch("[0-9a-f]{64}", event.event_id)


def test_sign_reproduces_the_published_headers_exactly():
    assert sign(BODY, KEY, HOST, nonce=NONCE, date=SENT) == HEADERS


def test_header_names_are_case_insensitive():
    headers = {name.title(): value for name, value in HEADERS.items()}  # "X-Fc-Nonce", "Host"
    assert check(headers=headers).order_id == "ac9674ed-cbfe-49aa-bc8b-eb1d2b74c429"


# --- Forged or damaged deliveries --------------------------------------------------------

def test_tampered_body_is_refused():
    tampered = BODY.replace(b"order.completed", b"order.refunded")
    assert refused(tampered) == "x-fc-content-sha512 does not match the body"


def test_tampered_body_with_a_matching_content_hash_is_refused():
    tampered = BODY.replace(b"order.completed", b"order.refunded")
    headers = {**HEADERS, "x-fc-content-sha512": signed(tampered)["x-fc-content-sha512"]}
    assert refused(tampered, headers) == "signature does not match"


@pytest.mark.parametrize(("header", "value", "reason"), [
    ("x-fc-nonce", "00000000000000000000000000000000", "signature does not match"),
    ("x-fc-nonce", "a" * 129, "x-fc-nonce is too long"),
    ("x-fc-date", "Mon, 20 Mar 2023 17:16:41 GMT", "signature does not match"),
    ("x-fc-date", "yesterday", "x-fc-date is not an RFC 1123 date"),
    ("host", "shop.example", "signature does not match"),
    ("x-fc-content-sha512", CONTENT_HASH.replace("pLs0", "pLs1"),
     "x-fc-content-sha512 does not match the body"),
    ("x-fc-content-sha512", "not base64!", "x-fc-content-sha512 is not base64"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace("+HXN", "+HXM"),
     "signature does not match"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace(SIGNATURE, "%%%"),
     "signature is not base64"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace(SIGNATURE, ""),
     "x-fc-authorization has no Signature"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace("HMAC-SHA512", "HMAC-SHA256"),
     "x-fc-authorization is not HMAC-SHA512"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace(
        "x-fc-nonce;x-fc-date;host", "x-fc-date;x-fc-nonce;host"),
     "x-fc-authorization signs unexpected headers"),
    ("x-fc-authorization", HEADERS["x-fc-authorization"].replace(";host", ""),
     "x-fc-authorization signs unexpected headers"),
    ("x-fc-authorization", f"Signature={SIGNATURE}", "x-fc-authorization is not HMAC-SHA512"),
])
def test_tampered_header_is_refused(header, value, reason):
    assert refused(headers={**HEADERS, header: value}) == reason


@pytest.mark.parametrize("header", sorted(HEADERS))
def test_missing_header_is_refused(header):
    headers = {name: value for name, value in HEADERS.items() if name != header}
    assert refused(headers=headers) == f"missing header {header}"
    assert refused(headers={**HEADERS, header: ""}) == f"missing header {header}"


@pytest.mark.parametrize(("key", "reason"), [
    (OTHER_KEY, "signature does not match"),
    ("not base64 at all!", "webhook key is not base64"),
    ("", "no webhook key configured"),
])
def test_wrong_or_malformed_key_is_refused(key, reason):
    assert refused(key=key) == reason


def test_a_proxy_rewritten_host_verifies_against_the_configured_public_host():
    headers = {**HEADERS, "host": "127.0.0.1:5000"}  # what the app sees behind the proxy
    assert refused(headers=headers) == "signature does not match"
    event = verify(BODY, headers, KEY, now=NOW, nonces=store(), host=HOST)
    assert event.event_type is EventType.ORDER_COMPLETED


# --- Freshness and replay ----------------------------------------------------------------

@pytest.mark.parametrize(("received", "reason"), [
    (SENT + timedelta(seconds=301), "x-fc-date is older than 300 s"),
    (SENT - timedelta(seconds=301), "x-fc-date is more than 300 s in the future"),
    (SENT + timedelta(days=400), "x-fc-date is older than 300 s"),
])
def test_date_outside_the_window_is_refused(received, reason):
    assert refused(now=received.timestamp()) == reason


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_date_at_the_edges_of_the_window_is_accepted(offset):
    assert check(now=SENT.timestamp() + offset).confirmation_id == "22ACD1D9"


def test_window_is_configurable():
    with pytest.raises(WebhookRejected, match="older than 10 s"):
        verify(BODY, HEADERS, KEY, now=NOW, nonces=None, max_age_seconds=10)


def test_replayed_delivery_is_refused():
    nonces = store()
    first = check(nonces=nonces)
    assert refused(nonces=nonces) == "x-fc-nonce was used before (replay)"
    # A redelivery by Flex has its own nonce, so it verifies, and maps to the same event.
    resent_body = BODY.replace(b'"IsResent":false', b'"IsResent":true')
    again = check(resent_body, signed(resent_body), nonces=nonces)
    assert again.is_resent and again.event_id == first.event_id


def test_a_forged_delivery_does_not_use_up_its_nonce():
    nonces = store()
    authorization = HEADERS["x-fc-authorization"].replace("+HXN", "+HXM")
    forged = {**HEADERS, "x-fc-authorization": authorization}
    assert refused(headers=forged, nonces=nonces) == "signature does not match"
    assert check(nonces=nonces).confirmation_id == "22ACD1D9"


def test_a_stale_delivery_does_not_use_up_its_nonce():
    nonces = store()
    refused(now=NOW + 3600, nonces=nonces)
    assert len(nonces) == 0


def test_nonce_is_remembered_until_the_window_closes():
    clock = [NOW]
    nonces = MemoryNonceStore(clock=lambda: clock[0])
    check(nonces=nonces)
    last_accepted = SENT.timestamp() + 300  # the last moment the date check lets it through
    clock[0] = last_accepted
    assert refused(now=last_accepted, nonces=nonces) == "x-fc-nonce was used before (replay)"
    clock[0] = last_accepted + 1
    assert refused(now=last_accepted + 1, nonces=nonces) == "x-fc-date is older than 300 s"
    assert nonces.seen_before("another", last_accepted + 600) is False
    assert len(nonces) == 1  # the example's nonce is forgotten: its date alone refuses it now


def test_nonces_check_is_skipped_only_when_asked():
    verify(BODY, HEADERS, KEY, now=NOW, nonces=None)
    verify(BODY, HEADERS, KEY, now=NOW, nonces=None)  # no store: no replay check
    with pytest.raises(TypeError):
        verify(BODY, HEADERS, KEY, now=NOW)  # the store must be passed, even if None


# --- The in-memory nonce store -----------------------------------------------------------

def test_memory_store_forgets_expired_nonces():
    clock = [1000.0]
    nonces = MemoryNonceStore(clock=lambda: clock[0])
    assert nonces.seen_before("a", 1300) is False
    clock[0] = 1300.0
    assert nonces.seen_before("a", 1300) is True  # still remembered at its expiry
    clock[0] = 1300.5
    assert nonces.seen_before("b", 1600) is False  # "a" expired and is forgotten
    assert len(nonces) == 1
    assert nonces.seen_before("a", 1600) is False


def test_memory_store_is_bounded_and_drops_the_soonest_to_expire():
    nonces = MemoryNonceStore(max_entries=3, clock=lambda: 0.0)
    for nonce, expires_at in [("late", 900), ("soon", 100), ("mid", 500), ("new", 700)]:
        assert nonces.seen_before(nonce, expires_at) is False
    assert len(nonces) == 3
    assert [nonces.seen_before(n, 999) for n in ("late", "mid", "new")] == [True, True, True]
    assert nonces.seen_before("soon", 999) is False


def test_memory_store_check_and_add_is_atomic():
    # Eight threads offer the same 2,000 nonces at once, switching threads as often as the
    # interpreter allows: each nonce must be new to exactly one of them.
    nonces = MemoryNonceStore(clock=lambda: 0.0)
    start = threading.Barrier(8)
    firsts: list[list[str]] = []

    def race():
        start.wait()
        firsts.append([n for n in map(str, range(2000)) if not nonces.seen_before(n, 60.0)])

    threads = [threading.Thread(target=race) for _ in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(n for found in firsts for n in found) == sorted(map(str, range(2000)))


# --- Parsing the body --------------------------------------------------------------------

@pytest.mark.parametrize(("body", "reason"), [
    (b"Event=order.completed", "body is not JSON"),
    (b"", "body is not JSON"),
    (b"\xff\xfe\xfa", "body is not JSON"),
    (b'["order.completed"]', "body is not a JSON object"),
    (event_body(Event=...), "body has no Event name"),
    (event_body(Event=""), "body has no Event name"),
    (event_body(TimeStamp=...), "body has no TimeStamp"),
    (event_body(TimeStamp="20 March"), "body TimeStamp is not an ISO 8601 time"),
    (event_body(OrderId=42), "body field OrderId is not a string"),
    (event_body(IsResent="yes"), "body field IsResent is not true/false"),
    # Bodies that used to raise past the parser (OverflowError, UnicodeEncodeError later).
    (event_body(TimeStamp="9999-12-31T23:59:59-23:59"), "body TimeStamp is out of range"),
    (event_body(TimeStamp="0001-01-01T00:00:00+01:00"), "body TimeStamp is out of range"),
    (event_body(OrderId="\ud800"), "body field OrderId is not storable text"),
    (event_body(ExternalOrderId="a\x00b"), "body field ExternalOrderId is not storable text"),
])
def test_unreadable_body_is_refused_even_when_signed(body, reason):
    assert refused(body, signed(body)) == reason
    with pytest.raises(WebhookUnreadable):  # signed, but the body: the receiver answers 400
        parse(body)


@pytest.mark.parametrize("name", [e.value for e in EventType])
def test_every_documented_event_parses_to_its_enum(name):
    body = event_body(Event=name)
    event = check(body, signed(body))
    assert event.event_type is EventType(name)


def test_unknown_event_parses_with_its_raw_name():
    body = event_body(Event="order.disputed.v2", EventData={"reason": "new"})
    event = check(body, signed(body))
    assert event.event_type == "order.disputed.v2"
    assert not isinstance(event.event_type, EventType)
    assert event.event_data == {"reason": "new"}
    assert event.order_id == "flex-key-1"


def test_event_without_order_ids_parses():
    body = event_body(Event="payout.created", OrderId=None, ExternalOrderId=...,
                      ConfirmationId=..., IsResent=..., EventData={"payoutId": "p-1"})
    event = check(body, signed(body))
    assert (event.event_type, event.order_id, event.external_order_id, event.confirmation_id,
            event.is_resent) == (EventType.PAYOUT_CREATED, None, None, None, False)


def test_property_names_are_case_insensitive():
    body = json.dumps({"event": "order.cancelled", "timeStamp": "2026-11-25T10:00:00Z",
                       "orderId": "flex-key-1", "isTestMode": True}).encode()
    event = check(body, signed(body))
    assert (event.event_type, event.order_id, event.is_test_mode) == (
        EventType.ORDER_CANCELLED, "flex-key-1", True)


def test_seven_digit_fractions_and_offsets_normalise_to_utc():
    body = event_body(TimeStamp="2026-11-25T12:00:00.1234567+02:00")
    event = check(body, signed(body))
    assert event.timestamp == datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)


# --- The idempotency key -----------------------------------------------------------------

def test_resent_event_has_the_same_event_id():
    original, resent = event_body(IsResent=False), event_body(IsResent=True)
    first = check(original, signed(original, nonce="1" * 32))
    again = check(resent, signed(resent, nonce="2" * 32))
    assert again.is_resent and not first.is_resent
    assert again.event_id == first.event_id


@pytest.mark.parametrize("change", [
    {"Event": "order.completed"},
    {"OrderId": "flex-key-2"},
    {"ExternalOrderId": "shop-order-2"},
    {"TimeStamp": "2026-11-25T10:00:00.123457Z"},  # a second refund a microsecond later
])
def test_a_different_event_has_a_different_event_id(change):
    base, other = event_body(), event_body(**change)
    assert check(other, signed(other)).event_id != check(base, signed(base)).event_id


def test_event_id_derivation_is_pinned():
    # Stored ids must stay valid across upgrades: changing the derivation breaks this test.
    body = event_body()
    expected = "137141fe9aa55ba844b55786d9b2095b84df6e7d81eae1df94ebcf0dc9004e60"
    assert check(body, signed(body)).event_id == expected
    assert event_id_for("order.refunded", "flex-key-1", "shop-order-1",
                        "2026-11-25T10:00:00.123456Z") == expected

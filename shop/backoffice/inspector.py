"""The integration inspector: Flex calls across orders (filtered, paged) and the transmit
queue; webhooks received from Flex. Its tabs are listed in TABS; each tab is one view of
this blueprint."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from shop.backoffice.access import merchant_only
from shop.services import services
from shop.storage.db import get_db
from shop.storage.flex_store import (
    CALLS_PER_PAGE,
    call_endpoints,
    recent_transmits,
    search_calls,
    transmit_counts,
)
from shop.webhooks import events

bp = Blueprint("inspector", __name__)

# (endpoint, tab title)
TABS = (("inspector.calls", "Flex calls"), ("inspector.webhooks", "Webhooks"))

STATUS_CHOICES = (("", "Any"), ("2xx", "2xx"), ("4xx", "4xx"), ("5xx", "5xx"),
                  ("none", "No answer"))


@bp.get("/flex")
@merchant_only
def calls():
    conn = get_db()
    filters = {
        "endpoint": request.args.get("endpoint", "").strip(),
        "status": request.args.get("status", "").strip(),
        "order": request.args.get("order", "").strip()[:36],
    }
    query = {"endpoint": filters["endpoint"] or None, "status_class": filters["status"] or None,
             "order_id": filters["order"] or None}
    page = max(1, request.args.get("page", 1, type=int))
    found, total = search_calls(conn, page=page, **query)
    pages = max(1, -(-total // CALLS_PER_PAGE))
    if page > pages:  # past the end (the log was reset, or a hand-made URL): the last page
        page = pages
        found, total = search_calls(conn, page=page, **query)
    queue = transmit_counts(conn)
    return render_template(
        "flex_calls.html",
        tabs=TABS,
        calls=found,
        total=total,
        page=page,
        pages=pages,
        filters=filters,
        endpoints=call_endpoints(conn),
        status_choices=STATUS_CHOICES,
        outbox={**queue, "rows": recent_transmits(conn)},
    )


@bp.get("/flex/webhooks")
@merchant_only
def webhooks():
    """Webhooks received, newest first, what each changed, and the deliveries refused."""
    conn = get_db()
    page = max(1, request.args.get("page", 1, type=int))
    found, total = events.page_of_events(conn, page)
    pages = max(1, -(-total // events.EVENTS_PER_PAGE))
    if page > pages:
        page = pages
        found, total = events.page_of_events(conn, page)
    sandbox_url = services().sandbox_url
    return render_template(
        "flex_webhooks.html",
        tabs=TABS,
        events=found,
        total=total,
        page=page,
        pages=pages,
        rejections=events.rejections(conn),
        delivery_log=f"{sandbox_url}/_sandbox/webhooks" if sandbox_url else None,
    )

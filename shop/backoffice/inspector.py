"""The integration inspector: Flex calls across orders (filtered, paged) and the transmit
queue; webhooks received from Flex. Its tabs are listed in TABS; each tab is one view of
this blueprint."""

from __future__ import annotations

from collections.abc import Callable

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
    found, total, page, pages = _paged(lambda page: search_calls(conn, page=page, **query),
                                       CALLS_PER_PAGE)
    queue = transmit_counts(conn)
    return render_template(
        "inspector/calls.html",
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
    found, total, page, pages = _paged(lambda page: events.page_of_events(conn, page),
                                       events.EVENTS_PER_PAGE)
    sandbox_url = services().sandbox_url
    return render_template(
        "inspector/webhooks.html",
        tabs=TABS,
        events=found,
        total=total,
        page=page,
        pages=pages,
        rejections=events.rejections(conn),
        delivery_log=f"{sandbox_url}/_sandbox/webhooks" if sandbox_url else None,
    )


def _paged(fetch: Callable[[int], tuple[list, int]], per_page: int):
    """The requested page of a list shown `per_page` at a time (templates/_shared/pager.html
    links the others): (rows, total, page, pages). `fetch(page)` answers (rows, total). A page
    past the end (the log was reset, or a hand-made URL) shows the last one."""
    page = max(1, request.args.get("page", 1, type=int))
    rows, total = fetch(page)
    pages = max(1, -(-total // per_page))
    if page > pages:
        page = pages
        rows, total = fetch(page)
    return rows, total, page, pages

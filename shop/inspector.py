"""The integration inspector: recent Flex calls across orders and the transmit queue."""

from __future__ import annotations

from flask import Blueprint, render_template

from .db import get_db
from .flex_store import recent_calls, recent_transmits, transmit_counts
from .security import demo_only

bp = Blueprint("inspector", __name__)


@bp.get("/flex")
@demo_only
def calls():
    conn = get_db()
    queue = transmit_counts(conn)
    return render_template(
        "flex_calls.html",
        calls=recent_calls(conn),
        outbox={**queue, "rows": recent_transmits(conn)},
    )

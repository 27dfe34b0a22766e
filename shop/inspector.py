"""The integration inspector: recent Flex calls across orders and the transmit queue."""

from __future__ import annotations

from flask import Blueprint, render_template

from flex import calllog, outbox

from .db import get_db
from .security import demo_only

bp = Blueprint("inspector", __name__)


@bp.get("/flex")
@demo_only
def calls():
    conn = get_db()
    queue = outbox.counts(conn)
    return render_template(
        "flex_calls.html",
        calls=calllog.recent(conn),
        outbox={**queue, "rows": outbox.recent(conn)},
    )

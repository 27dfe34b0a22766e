"""`GET /healthz` for the load balancer: 200 when this node can serve checkouts (its
database answers, with the schema applied), 503 otherwise. No Flex call: Flex being slow
must not take every web node out of the pool (checkout degrades on its own)."""

from __future__ import annotations

import logging

from flask import Blueprint

from shop.storage.db import database

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    try:
        with database().connection() as conn:
            conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    except Exception as exc:  # any failure to reach the database means: do not send traffic
        log.warning("health check failed: %s", exc)
        return "database unavailable\n", 503, {"Content-Type": "text/plain"}
    return "ok\n", 200, {"Content-Type": "text/plain", "Cache-Control": "no-store"}

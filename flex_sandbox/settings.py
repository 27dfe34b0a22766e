"""The sandbox's credentials and knobs: public test values, overridable from the environment."""

from __future__ import annotations

import json
import os

DEFAULT_APP_KEY = "sandbox-app-key"
DEFAULT_APP_SECRET = "sandbox-app-secret"  # noqa: S105 - the simulator's public test value
DEFAULT_MID = "8f7c2e1a-3b4d-4c5e-9f60-1a2b3c4d5e6f"
DEFAULT_SITE_ID = "5d0c9b8a-7e6f-4a3b-8c2d-1e0f9a8b7c6d"
DEFAULT_TOKENIZATION_KEY = "sandbox-tokenization-key"

# What a merchant copies from Flex's portal, for this sandbox (names as the shop's .env uses).
CREDENTIALS = {
    "FLEX_APP_KEY": DEFAULT_APP_KEY,
    "FLEX_APP_SECRET": DEFAULT_APP_SECRET,
    "FLEX_MID": DEFAULT_MID,
    "FLEX_SITE_ID": DEFAULT_SITE_ID,
    "FLEX_TOKENIZATION_KEY": DEFAULT_TOKENIZATION_KEY,
}


def config_from_env() -> dict:
    """Settings from FLEX_SANDBOX_* variables; `create_sandbox_app(config)` overrides them."""
    env = os.environ.get
    return {
        "app_key": env("FLEX_SANDBOX_APP_KEY", DEFAULT_APP_KEY),
        "app_secret": env("FLEX_SANDBOX_APP_SECRET", DEFAULT_APP_SECRET),
        "mid": env("FLEX_SANDBOX_MID", DEFAULT_MID),
        "site_id": env("FLEX_SANDBOX_SITE_ID", DEFAULT_SITE_ID),
        "tokenization_key": env("FLEX_SANDBOX_TOKENIZATION_KEY", DEFAULT_TOKENIZATION_KEY),
        "token_ttl": float(env("FLEX_SANDBOX_TOKEN_TTL", "600")),  # seconds
        "faults": json.loads(env("FLEX_SANDBOX_FAULTS") or "{}"),
        "webhook_url": env("FLEX_SANDBOX_WEBHOOK_URL") or None,
        "webhook_key": env("FLEX_SANDBOX_WEBHOOK_KEY") or None,  # base64, as the portal shows
        # seconds before a SUBMITTED (3-D Secure) evaluation is decided
        "submitted_delay": float(env("FLEX_SANDBOX_SUBMITTED_DELAY", "5")),
        "lost_answer_webhook_delay": float(env("FLEX_SANDBOX_LOST_ANSWER_WEBHOOK_DELAY", "5")),
        "webhook_attempts": int(env("FLEX_SANDBOX_WEBHOOK_ATTEMPTS", "6")),
        "webhook_backoff": float(env("FLEX_SANDBOX_WEBHOOK_BACKOFF", "1")),  # s, doubles
        "webhook_timeout": float(env("FLEX_SANDBOX_WEBHOOK_TIMEOUT", "5")),  # s per POST
    }

"""A local Flex sandbox simulator: `python -m flex.sandbox --port 8100`, or `serve()`."""

from .app import (
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_MID,
    DEFAULT_SITE_ID,
    DEFAULT_TOKENIZATION_KEY,
    create_sandbox_app,
)
from .server import SandboxServer, serve

__all__ = [
    "DEFAULT_APP_KEY", "DEFAULT_APP_SECRET", "DEFAULT_MID", "DEFAULT_SITE_ID",
    "DEFAULT_TOKENIZATION_KEY", "SandboxServer", "create_sandbox_app", "serve",
]

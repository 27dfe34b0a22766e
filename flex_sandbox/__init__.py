"""A local Flex sandbox simulator: `python -m flex_sandbox --port 8100`, or `serve()`."""

from .app import create_sandbox_app
from .server import SandboxServer, serve
from .settings import (
    CREDENTIALS,
    DEFAULT_APP_KEY,
    DEFAULT_APP_SECRET,
    DEFAULT_MID,
    DEFAULT_SITE_ID,
    DEFAULT_TOKENIZATION_KEY,
)

__all__ = [
    "CREDENTIALS", "DEFAULT_APP_KEY", "DEFAULT_APP_SECRET", "DEFAULT_MID", "DEFAULT_SITE_ID",
    "DEFAULT_TOKENIZATION_KEY", "SandboxServer", "create_sandbox_app", "serve",
]

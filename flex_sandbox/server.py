"""Serves the sandbox on a loopback port in a thread (tests, the embedded demo)."""

from __future__ import annotations

import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from .app import create_sandbox_app


class _QuietHandler(WSGIRequestHandler):
    """No access log: the query string of /tokenize carries the tokenization key."""

    def log_request(self, *args, **kwargs) -> None:
        pass

    def log_error(self, *args, **kwargs) -> None:  # e.g. the "reset" fault's broken pipe
        pass


class SandboxServer:
    """A running sandbox: `url` (root), `api_url` (…/v1). Use as a context manager, or call
    shutdown(): it stops the HTTP server and the webhook sender and joins both threads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, config: dict | None = None):
        self.app = create_sandbox_app(config)
        self._sandbox = self.app.extensions["flex_sandbox"]
        self._server = make_server(host, port, self.app, threaded=True,
                                   request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        self.api_url = f"{self.url}/v1"
        # A short poll interval: shutdown() returns within it (tests start many sandboxes).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="flex-sandbox", daemon=True)
        self._thread.start()

    def subscribe(self, url: str, key: str) -> None:
        """Sends webhooks to `url`, signed with `key` (base64, as Flex's portal shows it)."""
        self._sandbox.webhooks.subscribe(url, key)

    def shutdown(self) -> None:
        self._sandbox.state.clear_faults()  # let requests hanging on purpose go
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._sandbox.stop()

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()


def serve(host: str = "127.0.0.1", port: int = 0, config: dict | None = None) -> SandboxServer:
    """Starts a sandbox on host:port (0: a free port) and returns it, already serving."""
    return SandboxServer(host, port, config)

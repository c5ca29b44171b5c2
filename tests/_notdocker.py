"""HTTP servers that are not Docker engines, for the tests of what the executor says to one."""

from __future__ import annotations

import contextlib
import http.server
import threading
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Iterator


class NotDocker(http.server.BaseHTTPRequestHandler):
    """Every request gets the same answer; ``headers`` are added to it (none by default: no
    ``Api-Version``, which Docker and Podman send with every answer)."""

    status = 404
    content_type = "application/json"
    body = b'{"message": "page not found"}'
    headers_sent: ClassVar[dict[str, str]] = {}

    def _answer(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        for name, value in self.headers_sent.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


def not_docker(
    status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
) -> type[NotDocker]:
    """A :class:`NotDocker` answering ``status`` with ``body`` of ``content_type``."""
    answer = {
        "status": status,
        "content_type": content_type,
        "body": body,
        "headers_sent": headers or {},
    }
    return type(f"NotDocker{status}", (NotDocker,), answer)


#: Servers without the Api-Version header, by what they answer.
NOT_DOCKER = {
    "404-json": NotDocker,
    "404-html": not_docker(404, "text/html", b"<h1>Not Found</h1>"),
    "200-html": not_docker(200, "text/html", b"<html>hello</html>"),
    "200-empty-json": not_docker(200, "application/json", b"{}"),
    "200-text": not_docker(200, "text/plain", b"OK"),
}


@contextlib.contextmanager
def serving(handler: type[NotDocker]) -> Iterator[str]:
    """Serve ``handler`` on a free local port; yields its ``tcp://`` address."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)

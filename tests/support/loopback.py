"""The test servers' common part: a threaded HTTP server on a free loopback port, in a daemon thread."""

from __future__ import annotations

import sys
import threading
from http.server import ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # hundreds of concurrent streams in the benchmarks
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (a timeout under test) is no error of the server's.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class LoopbackServer:
    def _listen(self, handler, port: int = 0) -> None:
        self.server = _Server(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

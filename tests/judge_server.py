"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol, for tests.

``script(messages) -> str`` writes the reply; ``latency`` delays every answer; ``faults``
picks, per request number, one of "500", "timeout" (answers after ``hang`` seconds),
"garbage" (a non-JSON body) or "close" (drops the connection mid-response).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of 16 new connections overflows it,
    # the kernel drops the extra SYNs and the client retransmits them a whole second later
    request_queue_size = 128


class JudgeServer:
    def __init__(self, script, latency: float = 0.0, faults=None, hang: float = 3.0):
        self.script, self.latency, self.faults, self.hang = script, latency, faults or (lambda n: None), hang
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    number = len(server.requests)
                    server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._answer(number, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, number, body):
                fault = server.faults(number)
                time.sleep(server.hang if fault == "timeout" else server.latency)
                if fault == "500":
                    return self._send(500, b'{"error": {"message": "injected"}}')
                if fault == "garbage":
                    return self._send(200, b"<html>definitely not json")
                if fault == "close":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"choices": [')
                    self.close_connection = True
                    return
                reply = {"id": f"chatcmpl-{number}", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": server.script(body["messages"])}}]}
                self._send(200, json.dumps(reply).encode())

            def _send(self, status, payload):
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (a timeout test): what a real server sees, not a failure

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion_of(messages) -> str:
    """The graded response the client put between its markers."""
    from reasonlab_plugins.rewards_judge import CLOSE, OPEN

    text = messages[-1]["content"]
    return text.split(OPEN, 1)[1].split(CLOSE, 1)[0].strip()

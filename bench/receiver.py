"""The merchant's webhook endpoint for the benchmark: records when each event first arrives.

A separate process, so that its CPU shows apart from the harness's and nothing in the harness delays an
arrival. It answers every POST 204 at once without verifying signatures (the e2e tests cover signing;
here it would only add receiver CPU to the measurement). `GET /arrivals` returns
`{webhook-id: first arrival as unix seconds}`, `GET /healthz` 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.deliveries = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.time()
                lines = head.decode("latin-1").split("\r\n")
                method, path = [*lines[0].split(" "), "", ""][:2]
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
                await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if method == "GET" and path == "/arrivals":
                    body = json.dumps({"deliveries": self.deliveries, "arrivals": self.arrivals}).encode()
                    status = b"200 OK"
                elif method == "GET":
                    body, status = b"ok", b"200 OK"
                else:
                    webhook_id = headers.get("webhook-id")
                    if webhook_id:
                        self.arrivals.setdefault(webhook_id, now)
                    self.deliveries += 1
                    body, status = b"", b"204 No Content"
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()


async def main(port: int) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", port, limit=2**20)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(port))
    else:
        uvloop.run(main(port))

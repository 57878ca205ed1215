"""A tiny OTLP/HTTP trace sink for `BENCH_TRACING=1`: accepts POST /v1/traces and discards it.

It counts what it got (GET /stats), so the report can say whether the BFF really exported
spans in that run, rather than assume it. Runs in its own process, so its CPU is not ours.

    python -m bench.trace_sink [--port N]
"""

from __future__ import annotations

import argparse
import socket

from aiohttp import web

_COUNTS = web.AppKey("counts", dict[str, int])


async def traces(request: web.Request) -> web.Response:
    body = await request.read()
    counts = request.app[_COUNTS]
    counts["exports"] += 1
    counts["bytes"] += len(body)
    if request.content_type == "application/json":
        return web.json_response({})
    # An empty ExportTraceServiceResponse is an empty protobuf message: zero bytes.
    return web.Response(body=b"", content_type="application/x-protobuf")


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[_COUNTS])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_sink", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[_COUNTS] = {"exports": 0, "bytes": 0}
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    sock = socket.socket()
    sock.bind((args.host, args.port))
    print(f"trace-sink listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()

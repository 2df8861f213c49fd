"""What every cnnlab web app shares: the body limit, the page files and offline API docs, and a server that
holds up against slow or many clients. ``cnnlab serve`` (``serve.app``) and ``cnnlab lab`` (``serve.lab_api``)
are built on it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cnnlab.errors import CnnlabError

# The web extra's names, imported here once for serve.app and serve.lab_api, so that a missing package is one
# clear line whichever page is asked for.
try:
    import h11
    import python_multipart  # noqa: F401  (Starlette's form parser, for uploads)
    from fastapi import FastAPI, HTTPException, Query, Request, UploadFile  # noqa: F401
    from fastapi.concurrency import run_in_threadpool  # noqa: F401
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response  # noqa: F401
    from fastapi.staticfiles import StaticFiles
    from pydantic import AfterValidator, BaseModel, Field, ValidationError  # noqa: F401
    from swagger_ui_bundle import swagger_ui_path  # the /docs page's scripts, served locally
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as missing:
    raise CnnlabError(
        f"cnnlab serve needs the web extra ({missing.name} is not installed); run: pip install 'cnnlab[web]'"
    ) from None

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 10_000_000  # bytes of request body: 10 MB
BODY_TIMEOUT = 30.0  # seconds a client may pause between two pieces of its body
HEAD_TIMEOUT = 10.0  # seconds a connection may take to send a complete request line and headers
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"


class _BodyRefused(Exception):
    """Raised from ``receive`` to abandon a request body."""


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, 408 for one that stalls, without buffering it.

    A declared Content-Length over the limit is refused before any of the body is read; a chunked
    body is counted as it arrives and cut off at the limit. The application's own answer to the
    aborted body (it sees an exception while parsing) is dropped in favour of the 413 or 408.
    """

    def __init__(self, app, limit: int, timeout: float = BODY_TIMEOUT):
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            status = 413 if declared.isdigit() else 400
            return await _send_json(send, status, self._message(status))
        received, body_done, refused, started = 0, False, None, False

        async def counting_receive():
            nonlocal received, body_done, refused
            if body_done:  # after the body only http.disconnect comes: no timeout, no counting
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                refused = 408
                raise _BodyRefused() from None
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if received > self.limit:
                refused = 413
                raise _BodyRefused()
            return message

        async def guarded_send(message):
            nonlocal started
            if refused is None:
                started = True
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyRefused:
            pass
        if refused is not None and not started:
            await _send_json(send, refused, self._message(refused))

    def _message(self, status: int) -> str:
        return {
            413: f"request body too large: the limit is {self.limit:,} bytes (--max-upload)",
            408: f"request body stalled for {self.timeout:.0f} s; send it in one go",
            400: "Content-Length is not a number",
        }[status]


async def _send_json(send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- pictures in, answers out -------------------------------------------------------------------


def base_app(title: str, summary: str, max_upload: int = MAX_UPLOAD) -> FastAPI:
    """What every cnnlab app has: the body limit, the pages' files at /static, the API docs at /docs (offline)."""
    app = FastAPI(title=title, summary=summary, docs_url=None)
    app.add_middleware(BodyLimit, limit=max_upload)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")  # no CDN: works offline

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title} API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="",
        )

    return app


class HeadDeadline(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus a deadline for every request head (the slowloris defence).

    uvicorn times out idle connections only after a response, and not once a byte has arrived, so a
    client that opens connections and sends nothing, or its headers a byte at a time, holds them
    forever, and 64 of them lock everyone else out with 503. Here a connection that has not sent a
    complete request head HEAD_TIMEOUT seconds after it opened, or after its last response, is closed.
    """

    deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._start_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._start_deadline()

    def connection_lost(self, exc) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_later(HEAD_TIMEOUT, self._close_if_no_head)

    def _close_if_no_head(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no complete head yet
            self.transport.close()


def run_server(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run ``app`` with uvicorn until Ctrl-C.

    Slow or many clients: idle keep-alive connections close after 5 s, a request head must arrive whole
    within HEAD_TIMEOUT, more than 64 connections at once get 503, request heads are limited to 16 KiB,
    and BodyLimit answers 408 to a body that stalls.
    """
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        http=HeadDeadline,
        timeout_keep_alive=5,
        limit_concurrency=64,
        h11_max_incomplete_event_size=16 * 1024,
        timeout_graceful_shutdown=5,
    )

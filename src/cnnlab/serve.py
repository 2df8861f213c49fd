"""The HTTP API and the draw-a-digit page of ``cnnlab serve RUN``.

    GET  /             the page (files in cnnlab/static/): draw a digit, watch the prediction
    GET  /api/model    the model's summary rows, class names, dataset and input shape
    POST /api/predict  a picture -> label, class name, probabilities, the input the model saw
    GET  /docs         the OpenAPI documentation (/openapi.json)

``POST /api/predict`` takes either ``multipart/form-data`` with a file field ``image`` (PNG, JPEG,
BMP, GIF or WebP), or JSON ``{"pixels": [[...], ...]}``: rows of gray levels, 0..1 or 0..255, light
ink on a dark background as MNIST's (28 rows of 28 for an MNIST model; dark on light works too).
Both go through ``cnnlab.preprocess`` as any picture does. With ``?maps=N`` the answer also holds the
first N channels of every conv layer's output, each a small PNG data URL scaled to its own range.

Answers: 200 the prediction; 400 not an image, or malformed JSON; 413 a body over ``max_upload``
bytes; 415 another content type; 422 a blank picture (no ink: nothing to predict); 408 a client
that stalls for BODY_TIMEOUT seconds while sending its body.
"""

from __future__ import annotations

import asyncio
import base64
import io
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.errors import CnnlabError

try:
    from fastapi import FastAPI, HTTPException, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field, ValidationError
    import python_multipart  # noqa: F401  (Starlette's form parser, for uploads)
    from swagger_ui_bundle import swagger_ui_path  # the /docs page's scripts, served locally
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol
except ImportError as missing:
    raise CnnlabError(f"cnnlab serve needs the web extra ({missing.name} is not installed); "
                      "run: pip install 'cnnlab[web]'") from None

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 10_000_000  # bytes of request body: 10 MB
BODY_TIMEOUT = 30.0  # seconds a client may pause between two pieces of its body
HEAD_TIMEOUT = 10.0  # seconds a connection may take to send a complete request line and headers
MAX_MAP_CHANNELS = 64
PAGE_POLICY = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'"


class FeatureMaps(BaseModel):
    layer: str
    shape: list[int]  # the layer's whole output, (H, W, C)
    tiles: list[str]  # the first channels, each a PNG data URL


class PredictionAnswer(BaseModel):
    label: int
    class_name: str
    probabilities: list[float]
    input_28x28: list  # what the model saw: H rows of W gray levels 0..255 (of [R, G, B] for colour models)
    feature_maps: list[FeatureMaps] | None = None


class Pixels(BaseModel):
    pixels: list[list[float]] = Field(description="rows of gray levels, 0..1 or 0..255, light ink on dark as "
                                                  "MNIST's (dark on light works too); 28 rows of 28 for MNIST")


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
            except asyncio.TimeoutError:
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
        return {413: f"request body too large: the limit is {self.limit:,} bytes (--max-upload)",
                408: f"request body stalled for {self.timeout:.0f} s; send it in one go",
                400: "Content-Length is not a number"}[status]


async def _send_json(send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# --- pictures in, answers out -------------------------------------------------------------------

def pixels_image(rows: list[list[float]]) -> Image.Image:
    """JSON pixel rows (0..1 or 0..255) -> a gray picture; a CnnlabError says what is wrong."""
    try:
        values = np.asarray(rows, dtype=np.float64)
    except ValueError:
        raise CnnlabError("pixels: every row must have the same length") from None
    if values.ndim != 2 or min(values.shape) < 1:
        raise CnnlabError(f"pixels: expected rows of numbers, e.g. 28 rows of 28. Received: shape {values.shape}")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise CnnlabError("pixels: values must be numbers from 0 to 1, or from 0 to 255")
    scale = 255.0 if values.max() <= 1.0 else 1.0
    return Image.fromarray(np.round(values * scale).astype(np.uint8))


def _png_data_url(values: np.ndarray) -> str:
    """A 2-D array as a gray PNG data URL, its own minimum black and maximum white."""
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    buffer = io.BytesIO()
    Image.fromarray(np.round(scaled * 255).astype(np.uint8)).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def conv_feature_maps(model, pixels: np.ndarray, channels: int) -> list[dict]:
    """The first ``channels`` outputs of each conv layer for uint8 ``pixels`` (H, W, C), as PNG tiles."""
    import torch

    from cnnlab.inspect import feature_maps
    from cnnlab.models import as_model_input

    batch = as_model_input(torch.from_numpy(pixels[None]))  # (1, C, H, W)
    return [{"layer": layer.name, "shape": list(layer.output_shape),
             "tiles": [_png_data_url(channel.numpy()) for channel in maps[0, :channels]]}  # (H', W') each
            for layer, maps in feature_maps(model, batch, kinds=("Conv2D",))]


def answer(model, image: Image.Image, map_channels: int = 0) -> dict:
    """The JSON answer of /api/predict for a decoded picture."""
    from cnnlab.preprocess import predict_image

    prediction = predict_image(model, image)
    pixels = prediction.model_input  # (H, W, C) uint8
    result = {"label": prediction.label, "class_name": model.class_names[prediction.label],
              "probabilities": prediction.probabilities.tolist(),
              "input_28x28": (pixels[..., 0] if pixels.shape[2] == 1 else pixels).tolist()}
    if map_channels:
        result["feature_maps"] = conv_feature_maps(model, pixels, map_channels)
    return result


# --- the application ------------------------------------------------------------------------

PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, BMP, GIF or WebP"}}}},
    "application/json": {"schema": Pixels.model_json_schema()},
}}}


def create_app(model_or_run, max_upload: int = MAX_UPLOAD) -> FastAPI:
    """The FastAPI application for a model (or a run folder to load it from)."""
    from cnnlab.lab_api import add_lab_routes
    from cnnlab.modelio import load
    from cnnlab.summary import summarize

    if max_upload < 1:
        raise ValueError(f"max_upload must be a positive number of bytes. Received: max_upload={max_upload!r}")
    model = load(model_or_run) if isinstance(model_or_run, (str, Path)) else model_or_run
    model.eval()
    if getattr(model, "class_names", None) is None:  # a model built in Python rather than loaded from a run
        model.class_names = [str(index) for index in range(model.output_shape[0])]
    dataset = getattr(model, "dataset", None)
    app = FastAPI(title="cnnlab", summary=f"Predictions of the model '{model.name}' ({dataset or 'custom data'})",
                  docs_url=None)
    app.add_middleware(BodyLimit, limit=max_upload)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")  # no CDN: works offline
    add_lab_routes(app)
    model_card = {"name": model.name, "dataset": dataset, "input_shape": list(model.input_shape),
                  "class_names": list(model.class_names), "summary": summarize(model).to_dict()}

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="cnnlab API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css", swagger_favicon_url="")

    @app.get("/api/model", summary="The model: summary rows, class names, dataset, input shape")
    def describe_model() -> dict:
        return model_card

    @app.post("/api/predict", response_model=PredictionAnswer, response_model_exclude_none=True,
              openapi_extra=PREDICT_BODY, summary="Predict the class of a picture (file upload or JSON pixels)")
    async def predict(request: Request, maps: int = Query(0, ge=0, le=MAX_MAP_CHANNELS, description=(
            "also return the first N channels of each conv layer's feature maps as PNG data URLs"))):
        decode = await _picture_reader(request, max_upload)
        return await run_in_threadpool(_predict, model, decode, maps)  # decoding and the model: off the event loop

    return app


async def _picture_reader(request: Request, max_upload: int):
    """Read the body; return a function that decodes the picture in it (run later, in a worker thread)."""
    from cnnlab.preprocess import open_image

    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=8, max_part_size=max_upload) as form:
            upload = form.get("image")
            if upload is None or isinstance(upload, str):
                raise HTTPException(400, "multipart body: no file field 'image'; send the picture as image=@FILE")
            return partial(open_image, await upload.read(), name=upload.filename or "image")
    if content_type.startswith("application/json"):
        try:
            return partial(pixels_image, Pixels.model_validate_json(await request.body()).pixels)
        except ValidationError as problem:
            first = problem.errors()[0]  # one line: the first problem, and where it is
            path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
            where = f"{path}: " if path else ""
            raise HTTPException(400, f"JSON body: {where}{first['msg']}; send {{\"pixels\": [[...], ...]}}") from None
    raise HTTPException(415, "send multipart/form-data with a file field 'image', or JSON {\"pixels\": ...}")


def _predict(model, decode, map_channels: int) -> dict:
    from cnnlab.preprocess import BlankImageError

    try:
        return answer(model, decode(), map_channels)
    except BlankImageError as blank:
        raise HTTPException(422, f"{blank}; nothing to predict") from None
    except CnnlabError as problem:
        raise HTTPException(400, str(problem)) from None


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


def serve(model_or_run, host: str = "127.0.0.1", port: int = 8000, max_upload: int = MAX_UPLOAD) -> None:
    """Run the app with uvicorn until Ctrl-C.

    Slow or many clients: idle keep-alive connections close after 5 s, a request head must arrive whole
    within HEAD_TIMEOUT, more than 64 connections at once get 503, request heads are limited to 16 KiB,
    and BodyLimit answers 408 to a body that stalls.
    """
    import uvicorn

    uvicorn.run(create_app(model_or_run, max_upload=max_upload), host=host, port=port, http=HeadDeadline,
                timeout_keep_alive=5, limit_concurrency=64, h11_max_incomplete_event_size=16 * 1024,
                timeout_graceful_shutdown=5)

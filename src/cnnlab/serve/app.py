"""The HTTP API and the draw-a-digit page of ``cnnlab serve RUN``.

    GET  /             the page (files in cnnlab/static/): draw a digit, watch the prediction
    GET  /api/model    the model's summary rows, class names, dataset and input shape
    POST /api/predict  a picture -> label, class name, probabilities, the input the model saw
    GET  /docs         the OpenAPI documentation (/openapi.json)

``POST /api/predict`` takes either ``multipart/form-data`` with a file field ``image`` (PNG, JPEG,
BMP, GIF or WebP), or JSON ``{"pixels": [[...], ...]}``: rows of gray levels, 0..1 or 0..255, light
ink on a dark background as MNIST's (28 rows of 28 for an MNIST model; dark on light works too).
Both go through ``cnnlab.data.images`` and ``cnnlab.data.digits`` as any picture does. With ``?maps=N``
the answer also holds the first N channels of every conv layer's output, each a small PNG data URL
scaled to its own range.

Answers: 200 the prediction; 400 not an image, or malformed JSON; 413 a body over ``max_upload``
bytes; 415 another content type; 422 a blank picture (no ink: nothing to predict); 408 a client
that stalls for BODY_TIMEOUT seconds while sending its body.
"""

from __future__ import annotations

import base64
import io
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.errors import CnnlabError
from cnnlab.serve.web import (
    MAX_UPLOAD,
    PAGE_POLICY,
    STATIC,
    BaseModel,
    FastAPI,
    Field,
    FileResponse,
    HTTPException,
    Query,
    Request,
    ValidationError,
    base_app,
    run_in_threadpool,
    run_server,
)

MAX_MAP_CHANNELS = 64


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
    pixels: list[list[float]] = Field(
        description="rows of gray levels, 0..1 or 0..255, light ink on dark as "
        "MNIST's (dark on light works too); 28 rows of 28 for MNIST"
    )


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

    from cnnlab.lab.inspect import feature_maps
    from cnnlab.nn.inputs import as_model_input

    batch = as_model_input(torch.from_numpy(pixels[None]))  # (1, C, H, W)
    return [
        {
            "layer": layer.name,
            "shape": list(layer.output_shape),
            "tiles": [_png_data_url(channel.numpy()) for channel in maps[0, :channels]],
        }  # (H', W') each
        for layer, maps in feature_maps(model, batch, kinds=("Conv2D",))
    ]


def answer(model, image: Image.Image, map_channels: int = 0) -> dict:
    """The JSON answer of /api/predict for a decoded picture."""
    from cnnlab.serve.predict import predict_image

    prediction = predict_image(model, image)
    pixels = prediction.model_input  # (H, W, C) uint8
    result = {
        "label": prediction.label,
        "class_name": model.class_names[prediction.label],
        "probabilities": prediction.probabilities.tolist(),
        "input_28x28": (pixels[..., 0] if pixels.shape[2] == 1 else pixels).tolist(),
    }
    if map_channels:
        result["feature_maps"] = conv_feature_maps(model, pixels, map_channels)
    return result


# --- the application ------------------------------------------------------------------------

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, BMP, GIF or WebP"}
                    },
                }
            },
            "application/json": {"schema": Pixels.model_json_schema()},
        },
    }
}


def create_app(model_or_run, max_upload: int = MAX_UPLOAD) -> FastAPI:
    """The FastAPI application for a model (or a run folder to load it from)."""
    from cnnlab.nn.summary import summarize
    from cnnlab.serve.lab_api import add_lab_routes
    from cnnlab.training.run import Run

    if max_upload < 1:
        raise ValueError(f"max_upload must be a positive number of bytes. Received: max_upload={max_upload!r}")
    model = Run(model_or_run).load_model() if isinstance(model_or_run, (str, Path)) else model_or_run
    model.eval()
    if getattr(model, "class_names", None) is None:  # a model built in Python rather than loaded from a run
        model.class_names = [str(index) for index in range(model.output_shape[0])]
    dataset = getattr(model, "dataset", None)
    app = base_app("cnnlab", f"Predictions of the model '{model.name}' ({dataset or 'custom data'})", max_upload)
    add_lab_routes(app)
    model_card = {
        "name": model.name,
        "dataset": dataset,
        "input_shape": list(model.input_shape),
        "class_names": list(model.class_names),
        "summary": summarize(model).to_dict(),
    }

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get("/api/model", summary="The model: summary rows, class names, dataset, input shape")
    def describe_model() -> dict:
        return model_card

    @app.post(
        "/api/predict",
        response_model=PredictionAnswer,
        response_model_exclude_none=True,
        openapi_extra=PREDICT_BODY,
        summary="Predict the class of a picture (file upload or JSON pixels)",
    )
    async def predict(
        request: Request,
        maps: int = Query(
            0,
            ge=0,
            le=MAX_MAP_CHANNELS,
            description=("also return the first N channels of each conv layer's feature maps as PNG data URLs"),
        ),
    ):
        decode = await _picture_reader(request, max_upload)
        return await run_in_threadpool(_predict, model, decode, maps)  # decoding and the model: off the event loop

    return app


async def _picture_reader(request: Request, max_upload: int):
    """Read the body; return a function that decodes the picture in it (run later, in a worker thread)."""
    from cnnlab.data.images import open_image

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
            raise HTTPException(400, f'JSON body: {where}{first["msg"]}; send {{"pixels": [[...], ...]}}') from None
    raise HTTPException(415, "send multipart/form-data with a file field 'image', or JSON {\"pixels\": ...}")


def _predict(model, decode, map_channels: int) -> dict:
    from cnnlab.data.digits import BlankImageError

    try:
        return answer(model, decode(), map_channels)
    except BlankImageError as blank:
        raise HTTPException(422, f"{blank}; nothing to predict") from None
    except CnnlabError as problem:
        raise HTTPException(400, str(problem)) from None


def serve(model_or_run, host: str = "127.0.0.1", port: int = 8000, max_upload: int = MAX_UPLOAD) -> None:
    """``cnnlab serve``: the model's app (``create_app``) on ``run_server``."""
    run_server(create_app(model_or_run, max_upload=max_upload), host=host, port=port)

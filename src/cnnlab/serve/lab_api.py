"""The convolution lab as a web page: its HTTP API, added to ``cnnlab serve`` or served alone by ``cnnlab lab``.

    GET  /lab                          the page (static/lab.html, lab.js, lab.css)
    GET  /api/lab/kernels              the named kernels: description, sizes, weights for each size
    GET  /api/lab/pictures             the pictures to filter: id, name, shape (the first is the default)
    GET  /api/lab/pictures/{id}.png    a picture as it is
    POST /api/lab/pictures             upload a picture (multipart field ``image``) -> its id, name, shape
    POST /api/lab/filter               a picture + kernel + strides + padding + pooling + colour mode ->
                                       the output as PNG data URLs, every shape and the numbers of the formula,
                                       the value range, the raw numbers of a crop for the step-by-step mode

Every number comes from ``cnnlab.lab.vision``, which computes what Keras's Conv2D and pooling layers do.
A setting the lab cannot use is a 422 whose ``detail`` is a list of ``{"loc": [...], "msg": "..."}``,
FastAPI's own shape: a malformed request (a non-numeric cell, a stride of 0, a 9×9 kernel) and a
geometry that does not work (a kernel larger than the padded picture) alike.
"""

from __future__ import annotations

from typing import Annotated, Literal

from cnnlab.errors import CnnlabError
from cnnlab.lab import vision
from cnnlab.lab.pictures import PictureStore, png_bytes
from cnnlab.lab.stages import SettingError, filter_picture
from cnnlab.serve.web import (
    PAGE_POLICY,
    STATIC,
    AfterValidator,
    BaseModel,
    FastAPI,
    Field,
    FileResponse,
    HTTPException,
    RedirectResponse,
    Response,
    UploadFile,
    base_app,
    run_in_threadpool,
)

MAX_KERNEL = 7  # rows and columns of a kernel the page edits
MAX_STEP_CROP = 16  # a side of the step-by-step crop: every number stays readable on a phone
KERNEL_SIZES = range(1, MAX_KERNEL + 1)


def _rectangular(rows: list[list[float]]) -> list[list[float]]:
    if not rows or not rows[0]:
        raise ValueError("a kernel needs at least one row of one number")
    if len({len(row) for row in rows}) > 1:
        lengths = ", ".join(str(len(row)) for row in rows)
        raise ValueError(f"every row of a kernel needs as many numbers. Received rows of {lengths}")
    if len(rows) > MAX_KERNEL or len(rows[0]) > MAX_KERNEL:
        raise ValueError(
            f"the lab takes kernels of at most {MAX_KERNEL}×{MAX_KERNEL}. Received: {len(rows)}×{len(rows[0])}"
        )
    return rows


Number = Annotated[float, Field(allow_inf_nan=False)]
Grid = Annotated[list[list[Number]], AfterValidator(_rectangular)]
Positive = Annotated[int, Field(ge=1)]


class PoolSettings(BaseModel):
    kind: Literal["max", "avg"] = "max"
    size: tuple[Positive, Positive] = Field((2, 2), description="rows, cols; the stride is the size (Keras's default)")


class StepSettings(BaseModel):
    top: int = Field(0, ge=0, description="first row of the crop in the picture (moved inside it if needed)")
    left: int = Field(0, ge=0, description="first column of the crop")
    size: int = Field(8, ge=1, le=MAX_STEP_CROP, description="rows and columns of the crop")


class FilterRequest(BaseModel):
    picture: str = Field("photo", description="a picture id from GET /api/lab/pictures or POST /api/lab/pictures")
    kernel: Grid | None = Field(
        None,
        description=f"rows of numbers, at most {MAX_KERNEL}×{MAX_KERNEL}, not flipped "
        "(a cross-correlation, as Conv2D); null: pooling only",
    )
    channel_kernels: list[Grid] | None = Field(
        None,
        description="colour modes: one kernel per channel (red, green, blue), instead of `kernel` on every channel",
    )
    stride: tuple[Positive, Positive] = Field((1, 1), description="rows, cols")
    padding: Literal["valid", "same"] = "valid"
    pool: PoolSettings | None = Field(None, description="pooling after the convolution (or alone)")
    colour: Literal["gray", "sum", "per-channel"] = Field(
        "gray", description="a colour picture: made gray; three planes each with its kernel, summed; or kept apart"
    )
    step: StepSettings | None = Field(None, description="also return the raw numbers of this crop, filtered alone")
    values: bool = Field(False, description="also return the whole output's numbers (rows, of [channels] if 3-D)")


class Axis(BaseModel):
    axis: Literal["rows", "cols"]
    n: int  # pixels in
    pad: int  # padding pixels in total (TensorFlow's: the odd one bottom/right)
    k: int  # window
    s: int  # stride
    out: int  # floor((n + pad − k) / s) + 1


class Stage(BaseModel):
    name: str  # "convolution", "max pooling", "avg pooling"
    window: list[int]
    stride: list[int]
    padding: str
    input_shape: list[int]
    output_shape: list[int]
    axes: list[Axis]


class OutputImage(BaseModel):
    name: str  # "output", or "red", "green", "blue" for a per-channel output
    url: str  # a PNG data URL


class StepCrop(BaseModel):
    top: int
    left: int
    stride: list[int]
    pad_before: list[int]  # zero rows above, zero columns left of the crop
    pad_after: list[int]
    channel_names: list[str]
    values: list[list[list[float]]]  # per channel: the crop's pixels
    kernels: list[list[list[float]]]  # per channel: its kernel
    contributions: list[list[list[float]]]  # per channel: its part of the output
    output: list[list[float]]  # what the layer computes (a colour input: the channels summed)


class FilterAnswer(BaseModel):
    picture: str
    formula: str = vision.FORMULA
    input_shape: list[int]
    stages: list[Stage]
    output_shape: list[int]
    minimum: float
    maximum: float
    drawn_as: str  # how the output pictures map values to colours
    images: list[OutputImage]
    step: StepCrop | None = None
    values: list | None = None


class NamedKernel(BaseModel):
    name: str
    description: str
    weights: dict[str, list[list[float]]]  # size ("3") -> the kernel at that size


class PictureInfo(BaseModel):
    id: str
    name: str
    shape: list[int]


def named_kernels() -> list[dict]:
    """Every kernel of vision.KERNELS at every size it takes in the lab (the fixed ones at 3×3 only)."""
    kernels = []
    for name, description in vision.KERNELS.items():
        weights = {}
        for size in KERNEL_SIZES:
            try:
                weights[str(size)] = vision.make_kernel(name, size).tolist()
            except ValueError:  # a fixed 3×3 kernel at another size, an identity of even size
                continue
        kernels.append({"name": name, "description": description, "weights": weights})
    return kernels


def _unusable(field: str, message: str) -> HTTPException:
    """A 422 in FastAPI's own shape, so that the page reads every refusal the same way."""
    return HTTPException(422, [{"type": "value_error", "loc": ["body", field], "msg": message}])


def answer_filter(pictures: PictureStore, request: FilterRequest) -> dict:
    """The work of POST /api/lab/filter (run in a worker thread: NumPy and PNG encoding)."""
    try:
        picture = pictures.get(request.picture)
    except KeyError as missing:
        raise HTTPException(404, missing.args[0]) from None
    step = None if request.step is None else (request.step.top, request.step.left, request.step.size)
    pool = None if request.pool is None else (request.pool.kind, request.pool.size)
    try:
        result = filter_picture(
            picture.pixels,
            request.kernel,
            request.channel_kernels,
            request.stride,
            request.padding,
            pool,
            request.colour,
            step,
        )
    except SettingError as problem:
        raise _unusable(problem.field, str(problem)) from None
    values = result.pop("values")
    return {"picture": picture.id, **result, "values": values.tolist() if request.values else None}


def add_lab_routes(app: FastAPI, image: str | None = None) -> None:
    """The page at /lab and its API under /api/lab/ (the app serves /static already). ``image``: a picture
    file offered first (id ``image``), besides the default photo in gray and in colour."""
    pictures = PictureStore(image)
    kernels = named_kernels()

    @app.get("/lab", include_in_schema=False)
    def lab_page():
        return FileResponse(STATIC / "lab.html", headers={"Content-Security-Policy": PAGE_POLICY})

    @app.get(
        "/api/lab/kernels",
        response_model=list[NamedKernel],
        tags=["lab"],
        summary="The named kernels, with their weights at every size they take (1 to 7)",
    )
    def list_kernels():
        return kernels

    @app.get(
        "/api/lab/pictures",
        response_model=list[PictureInfo],
        tags=["lab"],
        summary="The pictures the lab can filter; the first is the default",
    )
    def list_pictures():
        return [picture.describe() for picture in pictures.pictures()]

    @app.get(
        "/api/lab/pictures/{picture_id}.png",
        tags=["lab"],
        summary="A picture as a PNG, as it is",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}, 404: {}},
    )
    def picture_png(picture_id: str):
        try:
            picture = pictures.get(picture_id)
        except KeyError as missing:
            raise HTTPException(404, missing.args[0]) from None
        return Response(png_bytes(picture.pixels), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.post(
        "/api/lab/pictures",
        response_model=PictureInfo,
        status_code=201,
        tags=["lab"],
        summary="Upload a picture (PNG, JPEG, BMP, GIF, WebP; at most 1024 pixels a side) to filter",
    )
    async def upload_picture(image: UploadFile):
        data = await image.read()
        try:
            picture = await run_in_threadpool(pictures.add, data, image.filename or "upload")
        except CnnlabError as problem:
            raise HTTPException(400, str(problem)) from None
        return picture.describe()

    @app.post(
        "/api/lab/filter",
        response_model=FilterAnswer,
        response_model_exclude_none=True,
        tags=["lab"],
        summary="Filter a picture as a Conv2D (then a pooling layer) does: the output, shapes, formula, range",
    )
    def filter_route(request: FilterRequest):  # a plain def: FastAPI runs it in a worker thread
        return answer_filter(pictures, request)


def create_lab_app(image: str | None = None) -> FastAPI:
    """The lab alone, without a model (``cnnlab lab``): the page, its API, /static and the API docs at /docs."""
    app = base_app("cnnlab lab", "The convolution lab: what a Conv2D and a pooling layer compute")
    add_lab_routes(app, image)

    @app.get("/", include_in_schema=False)
    def home():
        return RedirectResponse("/lab")

    return app

"""The convolution lab's HTTP API (cnnlab.serve.lab_api): the numbers are cnnlab.lab.vision's, the refusals say why."""

from __future__ import annotations

import base64
import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnlab.lab import vision
from cnnlab.lab.pictures import colour_photo

pytest.importorskip("fastapi")  # the web extra: the imports below need it
from fastapi.testclient import TestClient

from cnnlab.serve.lab_api import create_lab_app
from cnnlab.serve.web import PAGE_POLICY

ONES = [[1, 1, 1]] * 3
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def client():
    return TestClient(create_lab_app())


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def filtered(client, **settings) -> dict:
    response = client.post("/api/lab/filter", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def refusal(client, status: int = 422, **settings) -> list[dict] | str:
    response = client.post("/api/lab/filter", json=settings)
    assert response.status_code == status, response.text
    return response.json()["detail"]


# --- the course's numbers ---------------------------------------------------------------------


def test_an_all_ones_kernel_with_strides_2_1_gives_255_by_510_and_vision_s_numbers(client):
    answer = filtered(client, kernel=ONES, stride=[2, 1], values=True)
    assert answer["input_shape"] == [512, 512] and answer["output_shape"] == [255, 510]
    assert answer["formula"] == "out = floor((in + pad − k) / s) + 1"
    [convolution] = answer["stages"]
    assert convolution["axes"] == [
        {"axis": "rows", "n": 512, "pad": 0, "k": 3, "s": 2, "out": 255},
        {"axis": "cols", "n": 512, "pad": 0, "k": 3, "s": 1, "out": 510},
    ]
    expected = vision.convolve(vision.default_photo(), np.ones((3, 3)), stride=(2, 1))
    np.testing.assert_allclose(answer["values"], expected, atol=TOLERANCE, rtol=0)
    assert answer["minimum"] == pytest.approx(expected.min(), abs=TOLERANCE)
    assert answer["maximum"] == pytest.approx(expected.max(), abs=TOLERANCE)
    [image] = answer["images"]
    assert image["name"] == "output" and image["url"].startswith("data:image/png;base64,")


def test_padding_same_keeps_512_by_512_with_tensorflow_s_padding(client):
    answer = filtered(client, kernel=np.ones((4, 4)).tolist(), padding="same", values=True)
    assert answer["output_shape"] == [512, 512]
    assert [axis["pad"] for axis in answer["stages"][0]["axes"]] == [3, 3]  # 1 before, 2 after: TensorFlow's
    expected = vision.convolve(vision.default_photo(), np.ones((4, 4)), padding="same")
    np.testing.assert_allclose(answer["values"], expected, atol=TOLERANCE, rtol=0)


def test_5x5_max_pooling_alone_gives_102_by_102(client):
    answer = filtered(client, pool={"kind": "max", "size": [5, 5]}, values=True)
    assert answer["output_shape"] == [102, 102]
    assert [stage["name"] for stage in answer["stages"]] == ["max pooling"]
    np.testing.assert_allclose(answer["values"], vision.pool(vision.default_photo(), 5), atol=TOLERANCE, rtol=0)


def test_a_convolution_then_average_pooling_is_both_of_vision_s_layers(client):
    sobel = vision.make_kernel("sobel-y")
    answer = filtered(client, kernel=sobel.tolist(), stride=[1, 2], pool={"kind": "avg", "size": [2, 3]}, values=True)
    convolved = vision.convolve(vision.default_photo(), sobel, stride=(1, 2))
    expected = vision.pool(convolved, (2, 3), kind="avg")
    assert [stage["output_shape"] for stage in answer["stages"]] == [list(convolved.shape), list(expected.shape)]
    np.testing.assert_allclose(answer["values"], expected, atol=TOLERANCE, rtol=0)
    assert answer["minimum"] < 0 < answer["maximum"] and answer["drawn_as"].startswith("blue negative")


@pytest.mark.slow
def test_a_colour_picture_is_three_planes_each_with_its_kernel_summed_or_kept_apart(client):
    kernels = [vision.make_kernel(name) for name in ("sobel-x", "sobel-y", "mean")]
    stacked = np.stack(kernels, axis=2)  # (3, 3, 3): one kernel per plane
    summed = filtered(
        client, picture="photo-colour", colour="sum", channel_kernels=[k.tolist() for k in kernels], values=True
    )
    np.testing.assert_allclose(summed["values"], vision.convolve(colour_photo(), stacked), atol=TOLERANCE, rtol=0)
    assert summed["input_shape"] == [512, 512, 3] and summed["output_shape"] == [510, 510]
    assert summed["stages"][0]["output_shape"] == [510, 510]  # the three planes summed into one

    apart = filtered(
        client, picture="photo-colour", colour="per-channel", channel_kernels=[k.tolist() for k in kernels], values=True
    )
    assert apart["output_shape"] == apart["stages"][0]["output_shape"] == [510, 510, 3]
    assert [image["name"] for image in apart["images"]] == ["red", "green", "blue"]
    np.testing.assert_allclose(np.sum(apart["values"], axis=2), summed["values"], atol=TOLERANCE, rtol=0)


def test_gray_mode_makes_a_colour_picture_one_plane(client):
    answer = filtered(client, picture="photo-colour", colour="gray", kernel=[[1]], values=True)
    luma = colour_photo() @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    assert answer["input_shape"] == [512, 512]
    np.testing.assert_allclose(answer["values"], luma, atol=TOLERANCE, rtol=0)


def test_signed_outputs_are_drawn_blue_white_red_and_others_black_to_white():
    from cnnlab.lab.pictures import png_data_url

    def drawn(values) -> np.ndarray:
        encoded = png_data_url(np.array(values, dtype=float)).removeprefix("data:image/png;base64,")
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))

    np.testing.assert_array_equal(drawn([[-2.0, 0.0, 2.0]])[0], [[33, 102, 172], [255, 255, 255], [178, 24, 43]])
    np.testing.assert_array_equal(drawn([[1.0, 5.0, 9.0]])[0], [[0, 0, 0], [128, 128, 128], [255, 255, 255]])


# --- the step-by-step crop --------------------------------------------------------------------


def test_the_step_crop_holds_the_pixels_the_kernel_and_vision_s_output(client):
    kernel = [[1, 2, 0], [0, -1, 3]]
    answer = filtered(client, kernel=kernel, stride=[2, 1], step={"top": 100, "left": 40, "size": 8})["step"]
    crop = vision.default_photo()[100:108, 40:48]
    assert (answer["top"], answer["left"], answer["channel_names"]) == (100, 40, ["gray"])
    np.testing.assert_allclose(answer["values"][0], crop, atol=TOLERANCE, rtol=0)
    assert answer["kernels"] == [kernel]
    expected = vision.convolve(crop, np.array(kernel, dtype=float), stride=(2, 1))
    assert np.shape(answer["output"]) == (4, 6)
    np.testing.assert_allclose(answer["output"], expected, atol=TOLERANCE, rtol=0)
    assert answer["pad_before"] == [0, 0] and answer["pad_after"] == [0, 0]


def test_the_step_crop_is_moved_inside_the_picture_and_padded_like_the_layer(client):
    answer = filtered(
        client, kernel=np.ones((4, 4)).tolist(), padding="same", step={"top": 600, "left": 509, "size": 6}
    )["step"]
    assert (answer["top"], answer["left"]) == (506, 506)
    assert answer["pad_before"] == [1, 1] and answer["pad_after"] == [2, 2]
    crop = vision.default_photo()[506:, 506:]
    np.testing.assert_allclose(
        answer["output"], vision.convolve(crop, np.ones((4, 4)), padding="same"), atol=TOLERANCE, rtol=0
    )


def test_the_step_crop_of_a_colour_picture_gives_each_plane_s_part_of_the_sum(client):
    answer = filtered(client, picture="photo-colour", colour="sum", kernel=ONES, step={"top": 10, "left": 20})["step"]
    assert answer["channel_names"] == ["red", "green", "blue"] and len(answer["values"]) == 3
    np.testing.assert_allclose(np.sum(answer["contributions"], axis=0), answer["output"], atol=TOLERANCE, rtol=0)
    expected = vision.convolve(colour_photo()[10:18, 20:28], np.ones((3, 3)))
    np.testing.assert_allclose(answer["output"], expected, atol=TOLERANCE, rtol=0)


def test_a_step_crop_smaller_than_the_kernel_grows_to_the_kernel_s_size(client):
    answer = filtered(client, kernel=np.ones((5, 7)).tolist(), step={"top": 0, "left": 0, "size": 3})["step"]
    assert np.shape(answer["values"][0]) == (5, 7) and answer["output"] == [
        [pytest.approx(vision.default_photo()[:5, :7].sum(), abs=TOLERANCE)]
    ]


def test_pooling_alone_has_no_step_crop(client):
    assert "step" not in filtered(client, pool={"kind": "max", "size": [2, 2]}, step={"top": 0, "left": 0})


# --- refusals, with their reasons -------------------------------------------------------------


def test_a_kernel_larger_than_the_padded_picture_is_a_422_that_says_so(client):
    response = client.post("/api/lab/pictures", files={"image": ("tiny.png", png(np.full((4, 5), 200, np.uint8)))})
    assert response.status_code == 201
    tiny = response.json()
    assert tiny["shape"] == [4, 5] and tiny["id"].startswith("upload-")
    [problem] = refusal(client, picture=tiny["id"], kernel=np.ones((7, 7)).tolist())
    assert problem["loc"] == ["body", "kernel"]
    assert "a 7-pixel window does not fit in 4 pixels with padding='valid'" in problem["msg"]
    assert filtered(client, picture=tiny["id"], kernel=np.ones((7, 7)).tolist(), padding="same")["output_shape"] == [
        4,
        5,
    ]


def test_a_pool_larger_than_the_convolution_s_output_is_a_422_about_the_pool(client):
    [problem] = refusal(client, kernel=ONES, pool={"kind": "avg", "size": [600, 2]})
    assert problem["loc"] == ["body", "pool"] and "600-pixel window does not fit in 510 pixels" in problem["msg"]


def test_a_stride_of_0_is_a_422_naming_the_axis(client):
    [problem] = refusal(client, kernel=ONES, stride=[1, 0])
    assert problem["loc"] == ["body", "stride", 1] and "greater than or equal to 1" in problem["msg"]


def test_a_9x9_kernel_is_a_422_giving_the_lab_s_limit(client):
    [problem] = refusal(client, kernel=np.ones((9, 9)).tolist())
    assert problem["loc"] == ["body", "kernel"] and "at most 7×7. Received: 9×9" in problem["msg"]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [("abc", "valid number"), ("", "valid number"), ("inf", "finite number"), (None, "valid number")],
)
def test_a_cell_that_is_not_a_finite_number_is_a_422_naming_the_cell(client, cell, reason):
    [problem] = refusal(client, kernel=[[1, 1, 1], [1, 1, cell]])
    assert problem["loc"] == ["body", "kernel", 1, 2] and reason in problem["msg"]


def test_rows_of_different_lengths_are_a_422(client):
    [problem] = refusal(client, kernel=[[1, 1, 1], [1, 1]])
    assert "every row of a kernel needs as many numbers. Received rows of 3, 2" in problem["msg"]


def test_kernels_per_plane_need_a_colour_picture_and_one_size(client):
    [problem] = refusal(client, channel_kernels=[ONES] * 3)  # the gray photo has one plane
    assert problem["loc"] == ["body", "channel_kernels"] and "this input has 1 plane(s)" in problem["msg"]
    [problem] = refusal(client, picture="photo-colour", colour="sum", channel_kernels=[ONES, ONES, [[1]]])
    assert "the same size. Received: 3×3, 3×3, 1×1" in problem["msg"]


def test_an_unknown_picture_is_a_404_that_says_what_to_do(client):
    assert "upload it again" in refusal(client, 404, picture="upload-999", kernel=ONES)


# --- pictures ---------------------------------------------------------------------------------


def test_the_pictures_are_listed_default_first_and_served_as_png(client):
    listed = client.get("/api/lab/pictures").json()
    assert [(p["id"], p["shape"]) for p in listed[:2]] == [("photo", [512, 512]), ("photo-colour", [512, 512, 3])]
    response = client.get("/api/lab/pictures/photo.png")
    assert response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(served, np.round(vision.default_photo() * 255).astype(np.uint8))
    assert client.get("/api/lab/pictures/nothing.png").status_code == 404


def test_an_upload_with_three_equal_planes_is_gray_and_a_colour_one_is_kept(client):
    gray = np.dstack([np.arange(48, dtype=np.uint8).reshape(6, 8)] * 3)  # what a canvas sends for a gray drawing
    assert client.post("/api/lab/pictures", files={"image": ("drawing.png", png(gray))}).json()["shape"] == [6, 8]
    colour = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    uploaded = client.post("/api/lab/pictures", files={"image": ("colour.png", png(colour))}).json()
    assert uploaded["shape"] == [6, 8, 3] and uploaded["name"] == "colour.png"
    answer = filtered(client, picture=uploaded["id"], colour="per-channel", kernel=[[2]], values=True)
    np.testing.assert_allclose(answer["values"], 2 * (colour / 255), atol=TOLERANCE, rtol=0)


def test_an_upload_that_is_not_a_picture_or_too_large_is_a_400_with_the_reason(client):
    response = client.post("/api/lab/pictures", files={"image": ("notes.txt", b"hello")})
    assert response.status_code == 400 and "not an image cnnlab can read" in response.json()["detail"]
    response = client.post("/api/lab/pictures", files={"image": ("big.png", png(np.zeros((10, 1100), np.uint8)))})
    assert response.status_code == 400 and "at most 1024 a side" in response.json()["detail"]


def test_the_named_kernels_come_at_every_size_they_take(client):
    kernels = {kernel["name"]: kernel for kernel in client.get("/api/lab/kernels").json()}
    assert list(kernels) == list(vision.KERNELS)
    assert kernels["box"]["weights"]["5"] == np.ones((5, 5)).tolist()
    assert list(kernels["sobel-x"]["weights"]) == ["3"]
    assert list(kernels["identity"]["weights"]) == ["1", "3", "5", "7"]
    assert kernels["gaussian"]["weights"]["3"] == vision.make_kernel("gaussian", 3).tolist()


# --- the page, the documentation, the command -------------------------------------------------


def test_the_page_is_served_with_the_content_security_policy_and_no_inline_code(client):
    response = client.get("/lab")
    assert response.status_code == 200 and response.headers["content-security-policy"] == PAGE_POLICY
    page = response.text
    assert '<script src="/static/lab.js" defer></script>' in page and page.count("<script") == 1
    assert "style=" not in page and "<style" not in page and "http:" not in page and "https:" not in page
    for asset in ("lab.js", "lab.css", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/lab"


def test_the_openapi_documentation_describes_the_filter_endpoint(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/lab/filter"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/FilterRequest")
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/FilterAnswer")
    assert "422" in operation["responses"]
    fields = schema["components"]["schemas"]["FilterRequest"]["properties"]
    assert {"picture", "kernel", "channel_kernels", "stride", "padding", "pool", "colour", "step"} <= set(fields)
    assert {"/api/lab/kernels", "/api/lab/pictures", "/api/lab/pictures/{picture_id}.png"} <= set(schema["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text


def test_cnnlab_serve_has_the_lab_too():
    from cnnlab.nn.registry import create_model
    from cnnlab.serve.app import create_app

    served = TestClient(create_app(create_model("cnn")))
    assert served.get("/lab").headers["content-security-policy"] == PAGE_POLICY
    answer = served.post("/api/lab/filter", json={"kernel": ONES, "stride": [2, 1]})
    assert answer.status_code == 200 and answer.json()["output_shape"] == [255, 510]


def test_cnnlab_lab_reports_a_missing_image_in_one_line(run_cli, tmp_path):
    result = run_cli("lab", tmp_path / "missing.png")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("cnnlab: error: ") and "missing.png" in result.err and result.err.count("\n") == 1


def test_the_lab_command_module_imports_nothing_heavy():
    check = "import sys, cnnlab.cli.lab; print(sorted({'torch', 'fastapi', 'numpy'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", check], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

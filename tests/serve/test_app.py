"""The HTTP API and the page of ``cnnlab serve``, through FastAPI's TestClient."""

from __future__ import annotations

import asyncio
import base64
import importlib
import io
import re
import sys
import warnings

import numpy as np
import pytest
from drawings import draw_digit
from PIL import Image

import cnnlab
from cnnlab.data.digits import digit_input
from cnnlab.errors import CnnlabError
from cnnlab.nn.summary import summarize

pytest.importorskip("fastapi", reason="the web extra is not installed")
with warnings.catch_warnings():  # newer Starlette prefers httpx2 but works with httpx, which the dev extra installs
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

from cnnlab.serve.app import create_app
from cnnlab.serve.web import STATIC, BodyLimit

LIMIT = 200_000  # bytes: small, so that a too-large body is cheap to send


@pytest.fixture(scope="module")
def client(trained_run):
    return TestClient(create_app(trained_run, max_upload=LIMIT))


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(client, data: bytes, query: str = ""):
    return client.post(f"/api/predict{query}", files={"image": ("digit.png", data, "image/png")})


# --- the page -----------------------------------------------------------------------------------


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="pad"' in page.text and "default-src 'self'" in page.headers["content-security-policy"]
    for name in re.findall(r'(?:src|href)="/static/([^"]+)"', page.text):
        assert client.get(f"/static/{name}").status_code == 200
    assert {"app.js", "style.css"} <= set(re.findall(r'/static/([^"]+)"', page.text))


def test_the_api_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "http" not in page.text.replace(client.base_url.host, "")
    assert 'src="/docs-assets/swagger-ui-bundle.js"' in page.text
    script = client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/predict", "/api/model"}


def test_the_page_loads_nothing_from_the_internet():
    for path in STATIC.iterdir():
        assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", path.read_text()), path.name


# --- the API --------------------------------------------------------------------------------------


def test_model_describes_the_summary_and_class_names(client, trained_run):
    answer = client.get("/api/model").json()
    model = cnnlab.load(trained_run)
    assert answer["summary"] == summarize(model).to_dict()
    assert answer["class_names"] == [str(digit) for digit in range(10)]
    assert (answer["dataset"], answer["input_shape"]) == ("mnist", [28, 28, 1])


def test_predict_an_uploaded_picture(client):
    picture = draw_digit(1, size=(300, 240), box=(40, 40, 120, 200))
    response = upload(client, png_bytes(picture))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert list(answer) == ["label", "class_name", "probabilities", "input_28x28"]
    assert (answer["label"], answer["class_name"]) == (1, "1")
    assert len(answer["probabilities"]) == 10 and sum(answer["probabilities"]) == pytest.approx(1, abs=1e-5)
    np.testing.assert_array_equal(answer["input_28x28"], digit_input(picture))


def test_predict_with_feature_maps(client):
    answer = upload(client, png_bytes(draw_digit(0)), "?maps=3").json()
    (conv,) = answer["feature_maps"]  # the course's cnn has one conv layer
    assert (conv["layer"], conv["shape"], len(conv["tiles"])) == ("conv2d", [26, 26, 32], 3)
    prefix = "data:image/png;base64,"
    assert all(tile.startswith(prefix) for tile in conv["tiles"])
    with Image.open(io.BytesIO(base64.b64decode(conv["tiles"][0][len(prefix) :]))) as tile:
        assert tile.size == (26, 26) and tile.mode == "L"


@pytest.mark.parametrize("scale", [1.0, 255.0], ids=["0..1", "0..255"])
def test_predict_json_pixels(client, scale):
    digit = digit_input(draw_digit(0)) / 255.0  # light on dark, 28×28, as MNIST's
    response = client.post("/api/predict", json={"pixels": (digit * scale).tolist()})
    assert response.status_code == 200, response.text
    assert response.json()["label"] == 0


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"files": {"image": ("notes.png", b"just text", "image/png")}}, 400, "notes.png: not an image"),
        ({"files": {"picture": ("a.png", b"x", "image/png")}}, 400, "no file field 'image'"),
        ({"json": {"pixels": [[0, 1], [1]]}}, 400, "same length"),
        ({"json": {"pixels": [[0, 300], [1, 2]]}}, 400, "from 0 to 255"),
        ({"json": {"pixel": []}}, 400, "pixels: Field required"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON body"),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"json": {"pixels": [[0] * 28] * 28}}, 422, "blank image"),
    ],
)
def test_bad_requests_get_a_status_and_a_message(client, body, status, message):
    response = client.post("/api/predict", **body)
    assert response.status_code == status and message in response.json()["detail"]


def test_a_body_over_the_limit_gets_413_and_the_server_keeps_serving(client):
    response = upload(client, b"\x89PNG" + bytes(LIMIT))
    assert response.status_code == 413 and f"{LIMIT:,} bytes" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(LIMIT // 10_000 + 5):
            yield bytes(10_000)

    response = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert upload(client, png_bytes(draw_digit(1))).json()["label"] == 1


def run_middleware(limit: int, chunks, timeout: float = 5.0, headers=()):
    """Drive BodyLimit around an app that reads the whole body; return (status, chunks read)."""
    read, sent = [], []

    async def app(scope, receive, send):
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        chunk = next(chunks)
        if chunk is None:  # a stalled client
            await asyncio.sleep(10)
        read.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(headers)}
    asyncio.run(BodyLimit(app, limit, timeout)(scope, receive, send))
    return sent[0]["status"], len(read)


def test_the_limit_stops_reading_an_endless_body():
    status, chunks_read = run_middleware(25_000, iter(lambda: bytes(10_000), None))
    assert (status, chunks_read) == (413, 3)  # the third chunk crosses 25,000 bytes; nothing more is read


def test_a_declared_length_over_the_limit_is_refused_unread():
    status, chunks_read = run_middleware(1000, iter(lambda: bytes(10), None), headers=[(b"content-length", b"5000")])
    assert (status, chunks_read) == (413, 0)


def test_a_stalled_body_gets_408():
    status, _ = run_middleware(1000, iter([b"abc", None]), timeout=0.05)
    assert status == 408


def test_a_missing_web_extra_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # importing it now raises ImportError
    for module in ("cnnlab.serve.app", "cnnlab.serve.web", "cnnlab.serve.lab_api"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    for page in ("cnnlab.serve.app", "cnnlab.serve.lab_api"):  # cnnlab serve, cnnlab lab
        with pytest.raises(CnnlabError, match=r"pip install 'cnnlab\[web\]'"):
            importlib.import_module(page)


def test_serve_reads_sizes_and_refuses_nonsense(run_cli, trained_run):
    from cnnlab.cli.use import parse_size

    assert [parse_size(None, None, text) for text in ("10MB", "512KiB", "2000")] == [10_000_000, 524_288, 2000]
    result = run_cli("serve", trained_run, "--max-upload", "10XB")
    assert result.code == 2 and "Invalid value for '--max-upload'" in result.err

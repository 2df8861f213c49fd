"""The convolution lab page in a real headless Chromium: the course's shapes, the step-by-step slide, the refusals.

Skipped only where Chromium (or Playwright) is missing and the environment variable CI is unset; under CI a
missing browser is a failure (the ``sync_playwright`` fixture of test_browser.py). Screenshots are taken at
1280 and 390 pixels wide (``lab-desktop.png``, ``lab-phone.png`` in the test's temporary folder).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_browser import CHROMIUM, CHROMIUM_ARGS, serving, sync_playwright  # noqa: F401  (the fixture: Playwright, or a skip)

from cnnlab.lab import vision

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def lab_url():
    """`cnnlab lab`, served in a thread."""
    pytest.importorskip("fastapi")
    from cnnlab.serve.lab_api import create_lab_app

    with serving(create_lab_app()) as url:
        yield url


@pytest.fixture
def open_lab(request, lab_url):
    """A function opening /lab at a width (optionally with touch); afterwards, nothing left the server
    and the console had no errors (a CSP violation is one)."""
    outside, errors = [], []
    with request.getfixturevalue("sync_playwright")() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)

        def open_page(width: int = 1280, touch: bool = False):
            page = browser.new_page(viewport={"width": width, "height": 900}, has_touch=touch)
            page.on(
                "request", lambda request: request.url.startswith((lab_url, "data:")) or outside.append(request.url)
            )
            page.on(
                "console",
                lambda message: message.type == "error" and not refused(message.text) and errors.append(message.text),
            )
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(lab_url + "/lab")
            page.wait_for_selector("#outputs img")
            return page

        try:
            yield open_page
        finally:
            browser.close()
    assert outside == [] and errors == []


def refused(console_text: str) -> bool:
    """Chromium logs every 422 as a console error: the refusals the tests ask for."""
    return console_text.startswith("Failed to load resource: the server responded with a status of 422")


def set_knobs(
    page, kernel: str = "box", size: int = 3, stride=(1, 1), padding: str = "valid", pool: str = "", pool_size: int = 2
) -> None:
    """Set the knobs as a person does, then wait until the page shows the answer to exactly these settings."""
    from playwright.sync_api import expect

    page.select_option("#kernel-name", kernel)
    if kernel != "none":
        page.fill("#kernel-size", str(size))  # a range input: fill sets it and fires "input"
    page.fill("#stride-rows", str(stride[0]))
    page.fill("#stride-cols", str(stride[1]))
    page.select_option("#padding", padding)
    page.select_option("#pool-kind", pool)
    page.fill("#pool-size", str(pool_size))
    expected = expected_output(kernel, size, stride, padding, pool, pool_size)
    expect(page.locator("#output-shape")).to_have_text(vision.format_shape(expected.shape))
    expect(page.locator("#range-max")).to_have_attribute("data-value", as_javascript_writes(expected.max()))


def as_javascript_writes(number: float) -> str:
    """String(number) in JavaScript: the shortest repr, as Python's, without Python's ".0" on whole numbers."""
    text = repr(float(number))
    return text.removesuffix(".0")


def expected_output(kernel, size, stride, padding, pool, pool_size) -> np.ndarray:
    result = vision.default_photo()
    if kernel != "none":
        result = vision.convolve(result, vision.make_kernel(kernel, size), stride=stride, padding=padding)
    return vision.pool(result, pool_size, kind=pool) if pool else result


def test_strides_2_1_and_three_steps_of_the_slide_match_cnnlab_vision(open_lab, tmp_path):
    from playwright.sync_api import expect

    page = open_lab(1280)
    set_knobs(page, kernel="box", size=3, stride=(2, 1))  # all ones
    assert page.locator("#kernel-grids input").evaluate_all("cells => cells.map(c => c.value)") == ["1"] * 9
    expect(page.locator("#input-shape")).to_have_text("512×512")
    assert page.locator("#formula").text_content() == "out = floor((in + pad − k) / s) + 1"
    assert page.locator("#formula-lines li").all_text_contents() == [
        "convolution, rows: floor((512 + 0 − 3) / 2) + 1 = 255",
        "convolution, cols: floor((512 + 0 − 3) / 1) + 1 = 510",
    ]

    for _ in range(3):
        page.click("#step-next")
    top, left = int(page.input_value("#crop-top")), int(page.input_value("#crop-left"))
    crop = vision.default_photo()[top : top + 8, left : left + 8]
    expected = vision.convolve(crop, np.ones((3, 3)), stride=(2, 1))  # (3, 6): the third cell is (0, 2)
    window = page.locator("#step-input .cell.in-window").evaluate_all(
        "cells => cells.map(c => [Number(c.dataset.row), Number(c.dataset.col)])"
    )
    assert window == [[row, col] for row in range(3) for col in range(2, 5)]  # rows 0-2, columns 2-4
    current = page.locator("#step-output .cell.current")
    assert (current.get_attribute("data-row"), current.get_attribute("data-col")) == ("0", "2")
    assert float(current.get_attribute("data-value")) == pytest.approx(expected[0, 2], abs=1e-6)
    assert page.locator("#step-output .cell.filled").count() == 3
    assert page.locator("#step-products .cell").count() == 9
    assert page.locator("#step-sum").text_content() == f"sum = {float(f'{expected[0, 2]:.6g}')}"

    page.focus("#step-card")  # the keyboard: → steps on, ← back
    page.keyboard.press("ArrowRight")
    expect(page.locator("#step-output .cell.current")).to_have_attribute("data-col", "3")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#step-output .cell.current")).to_have_attribute("data-col", "1")
    page.screenshot(path=str(tmp_path / "lab-desktop.png"), full_page=True)
    assert Image.open(tmp_path / "lab-desktop.png").size[0] == 1280


def test_the_course_s_four_numbers_appear_when_set_as_the_course_sets_them(open_lab):
    from playwright.sync_api import expect

    page = open_lab(1280)
    set_knobs(page, kernel="box", size=3, stride=(2, 1))
    expect(page.locator("#output-shape")).to_have_text("255×510")
    set_knobs(page, kernel="box", size=3)  # blur: each pixel the sum of 3 × 3, so up to 9
    expect(page.locator("#output-shape")).to_have_text("510×510")
    expect(page.locator("#range-max")).to_have_text("9")
    set_knobs(page, kernel="box", size=3, padding="same")
    expect(page.locator("#output-shape")).to_have_text("512×512")
    set_knobs(page, kernel="none", pool="max", pool_size=5)
    expect(page.locator("#output-shape")).to_have_text("102×102")

    for preset, shape in (
        ("strides", "255×510"),
        ("blur", "508×508"),
        ("same", "512×512"),
        ("pool", "102×102"),
        ("colour", "510×510"),
    ):
        page.click(f"[data-preset={preset}]")
        expect(page.locator("#output-shape")).to_have_text(shape)
    expect(page.locator("#input-shape")).to_have_text("512×512×3")  # the colour preset: three planes, summed
    assert page.locator("#kernel-grids .kernel-grid").count() == 3


def test_bad_settings_get_a_clear_message_on_the_page(open_lab, tmp_path):
    from playwright.sync_api import expect

    page = open_lab(1280)
    status = page.locator("#status")
    page.fill("#stride-rows", "0")
    expect(status).to_have_text("Strides (rows): Input should be greater than or equal to 1")
    page.fill("#stride-rows", "1")
    expect(status).to_have_text("")

    page.fill("#kernel-rows", "9")
    page.fill("#kernel-cols", "9")
    expect(status).to_have_text("Kernel: the lab takes kernels of at most 7×7. Received: 9×9")
    page.fill("#kernel-rows", "3")
    page.fill("#kernel-cols", "3")
    cell = page.locator('#kernel-grids input[data-row="1"][data-col="2"]')
    cell.fill("abc")
    expect(status).to_contain_text("Kernel, row 2, column 3: Input should be a valid number")
    expect(cell).to_have_class("invalid")
    cell.fill("-1")
    expect(status).to_have_text("")

    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.full((4, 5), 120, np.uint8)).save(tiny)
    page.set_input_files("#upload", str(tiny))  # the kernel is 3×3: now make it 7×7 on a 4×5 picture
    expect(page.locator("#input-shape")).to_have_text("4×5")
    page.select_option("#kernel-name", "box")
    page.fill("#kernel-size", "7")
    expect(status).to_contain_text(
        "Kernel: convolution: a 7-pixel window does not fit in 4 pixels with padding='valid'"
    )
    page.select_option("#padding", "same")
    expect(page.locator("#output-shape")).to_have_text("4×5")


def test_a_drawing_is_filtered_and_identity_takes_odd_sizes_only(open_lab):
    from playwright.sync_api import expect

    page = open_lab(1280)
    page.click("#draw-toggle")
    box = page.locator("#draw-pad").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 40, box["y"] + box["height"] - 40, steps=20)  # a diagonal stroke
    page.mouse.up()
    page.click("#draw-use")
    expect(page.locator("#input-shape")).to_have_text("256×256")  # the pad's pixels, gray: one plane
    expect(page.locator("#output-shape")).to_have_text("254×254")
    assert "drawing" in page.locator("#picture option:checked").text_content()
    expect(page.locator("#range-min")).to_have_text("0")  # 3×3 all ones: 0 on the ink, 9 on the white paper
    expect(page.locator("#range-max")).to_have_text("9")

    page.select_option("#kernel-name", "identity")
    page.focus("#kernel-size")
    page.keyboard.press("ArrowRight")  # 3 -> 5: an identity has a centre pixel
    expect(page.locator("#kernel-size-value")).to_have_text("5")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#kernel-size-value")).to_have_text("3")
    expect(page.locator("#output-shape")).to_have_text("254×254")


def test_on_a_phone_the_page_fits_390_pixels_and_a_tap_moves_the_crop(open_lab, tmp_path):
    from playwright.sync_api import expect

    page = open_lab(390, touch=True)
    expect(page.locator("#output-shape")).to_have_text("510×510")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    before = page.input_value("#crop-left")
    frame = page.locator("#input-frame").bounding_box()
    page.touchscreen.tap(frame["x"] + frame["width"] * 0.25, frame["y"] + frame["height"] * 0.75)
    expect(page.locator("#crop-left")).not_to_have_value(before)
    top, left = int(page.input_value("#crop-top")), int(page.input_value("#crop-left"))
    # the 8×8 crop centred where the finger landed (touch points are whole CSS pixels: ±1 picture pixel)
    assert abs(top - (0.75 * 512 - 4)) <= 1 and abs(left - (0.25 * 512 - 4)) <= 1
    expect(page.locator("#step-input-note")).to_contain_text(f"at ({top}, {left})")
    page.tap("#step-next")
    expect(page.locator("#step-output .cell.filled")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "lab-phone.png"), full_page=True)
    assert Image.open(tmp_path / "lab-phone.png").size[0] == 390

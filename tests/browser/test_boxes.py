"""The bounding-box editor in a real browser (Debian's chromium through Playwright): drawing with
the mouse, labeling, nudging, deleting and undoing by keyboard, proposals, and screenshots."""

import io

import pytest
from PIL import Image, ImageDraw

from annotate import importing
from annotate.colours import text_colour_for
from annotate.models import Annotation, Item
from tests.browser.conftest import in_import_order, log_in, screenshot
from tests.factories import PASSWORD, UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = [{"name": "car", "hotkey": "1"}, {"name": "person", "hotkey": "2"}]


def _scene_jpeg(width: int, height: int, seed: int) -> bytes:
    """A street-ish picture: a sky-to-road gradient with a few solid shapes to put boxes on."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(120 + 80 * t), int(170 - 60 * t), int(230 - 150 * t)))
    for k in range(6):
        x = (seed * 97 + k * 173) % (width - 120)
        y = height // 3 + (seed * 31 + k * 67) % (height // 2)
        draw.rectangle([x, y, x + 60 + 9 * k, y + 40 + 5 * k], fill=((60 * k) % 256, 80, (40 * seed) % 256))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _boxes_project(annotator, n=3, size=(800, 600)):
    project = make_project(
        name="Street", task_type="image_boxes", labels=LABELS, members=[(annotator, "annotator")]
    )
    files = [(f"street-{i}.jpg", io.BytesIO(_scene_jpeg(*size, seed=i))) for i in range(n)]
    importing.import_images(project=project, files=files)
    in_import_order(project)
    return project


def _open_labeling(page, live_server, project):
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    page.wait_for_selector("[data-labeling][data-state=ready]")
    page.wait_for_function("document.querySelector('.boxes-image').complete")
    page.evaluate("window.__noReload = true")


def _wait_stage(page, attribute, value):
    page.wait_for_function(
        f"document.querySelector('[data-editor-stage]').dataset.{attribute} === {str(value)!r}"
    )


def _drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def _shown_item(page) -> Item:
    return Item.objects.get(pk=int(page.get_attribute("[data-canvas]", "data-item-id")))


def _wait_for_saved(page, n):
    page.wait_for_function(f"Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= {n}")


def test_annotator_draws_two_boxes_labels_nudges_deletes_undoes_and_submits(page, live_server):
    annotator = UserFactory(username="boxer")
    project = _boxes_project(annotator)
    log_in(page, live_server, "boxer", PASSWORD)
    _open_labeling(page, live_server, project)
    item = _shown_item(page)
    assert (item.width, item.height) == (800, 600)
    assert page.locator("[data-editor-stage]").is_visible()
    assert not page.locator("[data-item-text]").is_visible()
    world = page.locator(".boxes-world").bounding_box()

    def at(fx, fy):
        return round(world["x"] + fx * world["width"]), round(world["y"] + fy * world["height"])

    def frac(point):
        return (point[0] - world["x"]) / world["width"], (point[1] - world["y"]) / world["height"]

    # The first box gets the current label (the first, car); its hotkey then relabels it.
    a0, a1 = at(0.10, 0.20), at(0.40, 0.55)
    _drag(page, a0, a1)
    _wait_stage(page, "boxCount", 1)
    _wait_stage(page, "selected", 0)
    page.keyboard.press("2")
    assert page.inner_text(".boxes-list li:nth-child(1)").startswith("1. person")
    page.keyboard.press("Escape")
    _wait_stage(page, "selected", -1)

    b0, b1 = at(0.55, 0.50), at(0.90, 0.85)
    _drag(page, b0, b1)
    _wait_stage(page, "boxCount", 2)
    _wait_stage(page, "selected", 1)
    # Nudge the second box by 3 image pixels right and 10 down (Shift: 10 pixels).
    for key in ["ArrowRight", "ArrowRight", "ArrowRight", "Shift+ArrowDown"]:
        page.keyboard.press(key)
    # And resize it by keyboard: 2 pixels wider, 10 shorter.
    for key in ["Control+ArrowRight", "Control+ArrowRight", "Control+Shift+ArrowUp"]:
        page.keyboard.press(key)
    screenshot(page, "boxes-two-drawn")

    # Tab cycles (from the last box back to the first), Delete removes it, Ctrl+Z brings it back.
    page.keyboard.press("Tab")
    _wait_stage(page, "selected", 0)
    assert page.evaluate("document.activeElement.closest('.boxes-list li') !== null")
    page.keyboard.press("Delete")
    _wait_stage(page, "boxCount", 1)
    assert page.inner_text(".boxes-list li:nth-child(1)").startswith("1. car")
    page.keyboard.press("Control+z")
    _wait_stage(page, "boxCount", 2)
    assert page.inner_text(".boxes-list li:nth-child(1)").startswith("1. person")

    # Tags draw their text in black or white by WCAG contrast with the label's colour.
    for label in project.labels.all():
        tag = page.locator(".box:not([hidden]) .box-tag", has_text=label.name).first
        expected = "rgb(0, 0, 0)" if text_colour_for(label.colour) == "#000000" else "rgb(255, 255, 255)"
        assert tag.evaluate("t => getComputedStyle(t).color") == expected

    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    assert page.evaluate("window.__noReload") is True
    assert _shown_item(page).pk != item.pk

    stored = Annotation.objects.get(item=item)
    first, second = stored.value["boxes"]
    assert (first["label"], second["label"]) == ("person", "car")
    (ax0, ay0), (ax1, ay1) = frac(a0), frac(a1)
    (bx0, by0), (bx1, by1) = frac(b0), frac(b1)
    expected = [
        (first, (ax0, ay0, ax1 - ax0, ay1 - ay0)),
        (second, (bx0 + 3 / 800, by0 + 10 / 600, bx1 - bx0 + 2 / 800, by1 - by0 - 10 / 600)),
    ]
    for box, (x, y, w, h) in expected:
        # Within half an image pixel of what was drawn.
        assert abs(box["x"] - x) * 800 <= 0.5, (box, x)
        assert abs(box["y"] - y) * 600 <= 0.5, (box, y)
        assert abs(box["w"] - w) * 800 <= 0.5, (box, w)
        assert abs(box["h"] - h) * 600 <= 0.5, (box, h)
    assert stored.proposal_value is None
    assert not page.console_errors, page.console_errors


def _proposal(n=10):
    boxes = []
    for k in range(n):
        row, col = divmod(k, 5)
        boxes.append(
            {
                "x": 0.02 + col * 0.195,
                "y": 0.08 + row * 0.45,
                "w": 0.16,
                "h": 0.3,
                "label": LABELS[k % 2]["name"],
            }
        )
    return {"boxes": boxes}


def test_imported_boxes_prefill_the_editor_and_enter_accepts_them(page, live_server):
    annotator = UserFactory(username="accepter")
    project = _boxes_project(annotator, n=2)
    proposal = _proposal(10)
    Item.objects.filter(project=project).update(proposal={"value": proposal, "score": None})
    log_in(page, live_server, "accepter", PASSWORD)
    _open_labeling(page, live_server, project)
    item = _shown_item(page)
    _wait_stage(page, "boxCount", 10)
    text = page.inner_text("[data-proposal]")
    assert text.startswith("Proposed: 10 boxes") and "no box model" in text and "Enter accepts" in text
    assert page.locator(".boxes-list li:not([hidden])").count() == 10
    # The list is the accessible view: focusing an entry selects its box.
    page.locator(".boxes-list li:nth-child(4) button").focus()
    _wait_stage(page, "selected", 3)
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)

    stored = Annotation.objects.get(item=item)
    assert stored.value == proposal
    assert stored.proposal_value == proposal and stored.proposal_accepted is True
    assert page.evaluate("window.__noReload") is True
    assert not page.console_errors, page.console_errors


def test_zoom_keeps_boxes_in_fractions_and_arrows_pan_when_nothing_is_selected(page, live_server):
    annotator = UserFactory(username="zoomer")
    project = _boxes_project(annotator, n=1, size=(2000, 1500))
    log_in(page, live_server, "zoomer", PASSWORD)
    _open_labeling(page, live_server, project)
    item = _shown_item(page)
    viewport = page.locator(".boxes-viewport").bounding_box()
    for _ in range(4):
        page.keyboard.press("+")
    world = page.locator(".boxes-world").bounding_box()
    assert world["width"] == pytest.approx(viewport["width"] * 1.25**4, rel=0.01)
    page.keyboard.press("ArrowRight")  # nothing selected: pans
    panned = page.locator(".boxes-world").bounding_box()
    assert panned["x"] < world["x"]
    # A box drawn at this zoom covers the same fraction of the image it covers on screen.
    start = (viewport["x"] + 0.25 * viewport["width"], viewport["y"] + 0.25 * viewport["height"])
    end = (viewport["x"] + 0.5 * viewport["width"], viewport["y"] + 0.5 * viewport["height"])
    _drag(page, start, end)
    _wait_stage(page, "boxCount", 1)
    screenshot(page, "boxes-zoomed-in")
    page.keyboard.press("0")
    reset = page.locator(".boxes-world").bounding_box()
    assert reset["width"] == pytest.approx(viewport["width"], abs=1)
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    (box,) = Annotation.objects.get(item=item).value["boxes"]
    expected_x = (start[0] - panned["x"]) / panned["width"]
    expected_w = (end[0] - start[0]) / panned["width"]
    assert abs(box["x"] - expected_x) * 2000 <= 0.5
    assert abs(box["w"] - expected_w) * 2000 <= 0.5
    assert not page.console_errors, page.console_errors


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (2560, 1440)])
def test_screenshot_of_an_item_with_ten_boxes_has_no_horizontal_scroll(page, live_server, width, height):
    annotator = UserFactory(username=f"shot{width}")
    project = _boxes_project(annotator, n=2, size=(1024, 768))
    Item.objects.filter(project=project).update(proposal={"value": _proposal(10), "score": None})
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, live_server, f"shot{width}", PASSWORD)
    _open_labeling(page, live_server, project)
    _wait_stage(page, "boxCount", 10)
    page.keyboard.press("Tab")
    _wait_stage(page, "selected", 0)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    viewport = page.locator(".boxes-viewport").bounding_box()
    assert viewport["x"] >= 0 and viewport["x"] + viewport["width"] <= width
    screenshot(page, f"boxes-ten-{width}x{height}")


def test_a_label_key_with_nothing_selected_sets_the_next_boxs_label_and_boxes_move_and_resize(
    page, live_server
):
    annotator = UserFactory(username="mover")
    project = _boxes_project(annotator, n=1)
    log_in(page, live_server, "mover", PASSWORD)
    _open_labeling(page, live_server, project)
    item = _shown_item(page)
    world = page.locator(".boxes-world").bounding_box()
    scale = world["width"] / 800  # screen pixels per image pixel

    def at(fx, fy):
        return round(world["x"] + fx * world["width"]), round(world["y"] + fy * world["height"])

    page.keyboard.press("2")  # nothing selected: the next box is a person
    assert page.get_attribute("[data-label=person]", "aria-pressed") == "true"
    x0, y0 = at(0.2, 0.2)
    x1, y1 = at(0.4, 0.5)
    _drag(page, (x0, y0), (x1, y1))
    _wait_stage(page, "boxCount", 1)
    # Move: drag the box's middle 50 screen pixels right and 30 down.
    mx, my = (x0 + x1) // 2, (y0 + y1) // 2
    _drag(page, (mx, my), (mx + 50, my + 30))
    # Resize: the south-east handle 40 screen pixels further right.
    handle = page.locator(".box.selected .box-handle-se").bounding_box()
    hx, hy = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    _drag(page, (hx, hy), (hx + 40, hy))
    width_after_resize = page.inner_text(".boxes-list li:nth-child(1)")
    page.keyboard.press("Control+z")  # takes back the resize only
    assert page.inner_text(".boxes-list li:nth-child(1)") != width_after_resize
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)

    (box,) = Annotation.objects.get(item=item).value["boxes"]
    assert box["label"] == "person"
    expected_x = (x0 + 50 - world["x"]) / world["width"]
    expected_y = (y0 + 30 - world["y"]) / world["height"]
    assert abs(box["x"] - expected_x) * 800 <= 0.5
    assert abs(box["y"] - expected_y) * 600 <= 0.5
    assert abs(box["w"] * 800 - (x1 - x0) / scale) <= 0.5
    assert not page.console_errors, page.console_errors


# Keydown to the next item painted, measured in the page: a MutationObserver on the shown item's
# id, then the next animation frame (as the benchmark measures it).
_PAINT_TIMER = """
window.__paints = [];
window.__armPaint = () => { window.__t0 = performance.now(); };
new MutationObserver(() => requestAnimationFrame(() => {
  if (window.__t0 != null) window.__paints.push(performance.now() - window.__t0);
  window.__t0 = null;
})).observe(document.querySelector("[data-canvas]"), { attributes: true, attributeFilter: ["data-item-id"] });
"""


def test_an_item_with_ten_boxes_is_painted_quickly_after_the_submitting_key(page, live_server):
    annotator = UserFactory(username="speedy")
    project = _boxes_project(annotator, n=12, size=(1024, 768))
    Item.objects.filter(project=project).update(proposal={"value": _proposal(10), "score": None})
    log_in(page, live_server, "speedy", PASSWORD)
    _open_labeling(page, live_server, project)
    page.evaluate(_PAINT_TIMER)
    for n in range(1, 11):
        page.wait_for_load_state("networkidle")  # the next item and its image are prefetched
        page.wait_for_timeout(300)  # the benchmark's think time
        page.evaluate("window.__armPaint()")
        page.keyboard.press("Enter")
        page.wait_for_function(f"window.__paints.length >= {n}")
        _wait_stage(page, "boxCount", 10)
    paints = sorted(page.evaluate("window.__paints"))
    median = paints[len(paints) // 2]
    print(
        f"keydown to next item painted, 10 boxes: median {median:.1f} ms, max {paints[-1]:.1f} ms (target 50)"
    )
    # A loose bound here (a shared test machine); bench/ measures the target under load.
    assert median < 100, paints
    _wait_for_saved(page, 10)

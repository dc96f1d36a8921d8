"""SVG pictures: well-formed, escaped, complete; and rendered to PNG under test-artifacts/ to look at."""

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from training.pictures import confusion_matrix_svg, learning_curve_svg

SVG = "{http://www.w3.org/2000/svg}"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pictures"

EVIL = "<script>"


def _parse(svg):
    return ET.fromstring(svg)


def _by_class(root, tag, cls):
    return [el for el in root.iter(f"{SVG}{tag}") if el.get("class") == cls]


def _matrix(k, seed=0, n_per_class=40):
    """A plausible confusion matrix: mostly diagonal, with uneven class sizes."""
    rng = np.random.default_rng(seed)
    m = np.zeros((k, k), dtype=int)
    for i in range(k):
        n = int(n_per_class * rng.uniform(0.3, 2.0))
        spread = rng.dirichlet(np.full(k, 0.3))
        spread[i] += rng.uniform(1.0, 4.0)
        m[i] = rng.multinomial(n, spread / spread.sum())
    return m.tolist()


CURVE = [
    {"version": 1, "n_labels": 50, "accuracy": 0.62, "ci_low": 0.48, "ci_high": 0.74},
    {"version": 2, "n_labels": 120, "accuracy": 0.71, "ci_low": 0.62, "ci_high": 0.79},
    {"version": 3, "n_labels": 260, "accuracy": 0.80, "ci_low": 0.74, "ci_high": 0.85},
    {"version": 4, "n_labels": 410, "accuracy": 0.83, "ci_low": 0.78, "ci_high": 0.87},
    {"version": 5, "n_labels": 600, "accuracy": 0.87, "ci_low": 0.83, "ci_high": 0.90},
]


def test_confusion_matrix_has_k_by_k_cells_with_counts():
    classes = ["cat", "dog", "bird", "fish"]
    matrix = _matrix(4)

    root = _parse(confusion_matrix_svg(matrix, classes))

    cells = _by_class(root, "rect", "cell")
    assert len(cells) == 16
    assert {(int(c.get("data-row")), int(c.get("data-col"))) for c in cells} == {
        (i, j) for i in range(4) for j in range(4)
    }
    counts = [el.text for el in _by_class(root, "text", "count")]
    assert counts == [str(v) for row in matrix for v in row]


def test_confusion_matrix_row_labels_are_true_and_columns_predicted():
    root = _parse(confusion_matrix_svg([[5, 1], [2, 7]], ["spam", "ham"]))

    rows = [el.text for el in _by_class(root, "text", "row-label")]
    cols = [el.text for el in _by_class(root, "text", "col-label")]
    texts = {el.text for el in root.iter(f"{SVG}text")}

    assert rows == ["spam", "ham"]
    assert cols == ["spam", "ham"]
    assert {"True class", "Predicted class"} <= texts
    assert [el.text for el in _by_class(root, "text", "row-total")] == ["6", "9"]


def test_confusion_matrix_shades_by_share_of_row():
    # Both diagonal cells hold 100% of their row, whatever the row size.
    root = _parse(confusion_matrix_svg([[1000, 0], [0, 3]], ["big", "small"]))
    fill = {(c.get("data-row"), c.get("data-col")): c.get("fill") for c in _by_class(root, "rect", "cell")}

    assert fill[("0", "0")] == fill[("1", "1")]
    assert fill[("0", "1")] == fill[("1", "0")] != fill[("0", "0")]


def test_confusion_matrix_escapes_class_labels():
    classes = [EVIL, 'quote"s & amps', "ok"]

    svg = confusion_matrix_svg(_matrix(3), classes)
    root = _parse(svg)

    assert "&lt;script&gt;" in svg
    assert "<script" not in svg
    assert not list(root.iter(f"{SVG}script"))
    assert not list(root.iter("script"))
    assert [el.text for el in _by_class(root, "text", "row-label")] == classes


def test_confusion_matrix_rejects_a_matrix_that_does_not_match_classes():
    with pytest.raises(ValueError, match="2 x 2"):
        confusion_matrix_svg([[1, 2, 3]], ["a", "b"])


def test_confusion_matrix_handles_twenty_classes_and_long_names():
    classes = [f"class number {i} with a rather long name" for i in range(20)]

    root = _parse(confusion_matrix_svg(_matrix(20), classes))

    assert len(_by_class(root, "rect", "cell")) == 400
    labels = [el.text for el in _by_class(root, "text", "row-label")]
    assert all(len(label) <= 22 for label in labels)
    # The full name survives as a tooltip.
    assert root.find(f".//{SVG}text[@class='row-label']/{SVG}title").text == classes[0]


def test_svgs_scale_by_viewbox():
    for svg in (confusion_matrix_svg([[1]], ["only"]), learning_curve_svg(CURVE)):
        root = _parse(svg)
        assert re.fullmatch(r"0 0 \d+ \d+", root.get("viewBox"))
        assert " id=" not in svg


def test_learning_curve_has_one_point_per_version():
    root = _parse(learning_curve_svg(CURVE))

    assert len(_by_class(root, "circle", "point")) == len(CURVE)
    assert [el.text for el in _by_class(root, "text", "version")] == ["v1", "v2", "v3", "v4", "v5"]
    assert len(_by_class(root, "path", "ci-whisker")) == len(CURVE)
    assert len(_by_class(root, "polygon", "ci-band")) == 1


def test_learning_curve_axes_run_from_zero_to_one_and_cover_the_label_counts():
    root = _parse(learning_curve_svg(CURVE))

    y_ticks = [el.text for el in _by_class(root, "text", "y-tick")]
    x_ticks = [int(el.text.replace(",", "")) for el in _by_class(root, "text", "x-tick")]

    assert y_ticks == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert x_ticks[0] == 0
    assert x_ticks[-1] >= 600


def test_learning_curve_with_one_point_and_no_ci():
    root = _parse(learning_curve_svg([{"n_labels": 30, "accuracy": 0.5}]))

    assert len(_by_class(root, "circle", "point")) == 1
    assert not _by_class(root, "path", "ci-whisker")
    assert not _by_class(root, "polygon", "ci-band")


def test_learning_curve_with_no_points_says_so():
    svg = learning_curve_svg([])

    root = _parse(svg)
    assert "no versions yet" in {el.text for el in root.iter(f"{SVG}text")}
    assert not _by_class(root, "circle", "point")


def test_learning_curve_escapes_version_names_and_title():
    svg = learning_curve_svg([{"n_labels": 10, "accuracy": 0.4, "version": EVIL}], title="A & B <i>")

    root = _parse(svg)
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    assert [el.text for el in _by_class(root, "text", "version")] == [EVIL]
    assert not list(root.iter(f"{SVG}i"))


def test_learning_curve_rejects_a_point_without_accuracy():
    with pytest.raises(ValueError, match="accuracy"):
        learning_curve_svg([{"n_labels": 10}])


def _render(name, svg, profile):
    """Inline `svg` in an HTML page and screenshot it with headless chromium."""
    root = _parse(svg)
    width, height = int(root.get("width")), int(root.get("height"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = ARTIFACTS / f"{name}.html"
    png = ARTIFACTS / f"{name}.png"
    page.write_text(
        "<!doctype html><meta charset='utf-8'><body style='margin:0;background:#ffffff'>" + svg + "</body>",
        encoding="utf-8",
    )
    png.unlink(missing_ok=True)
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--force-device-scale-factor=2",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    return png


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is missing; cannot render SVG to PNG")
def test_pictures_render_to_png_in_chromium(tmp_path):
    from PIL import Image

    pictures = {
        "confusion_matrix_2": confusion_matrix_svg([[48211, 1790], [3420, 12075]], ["negative", "positive"]),
        "confusion_matrix_4": confusion_matrix_svg(_matrix(4), ["cat", "dog", "bird", EVIL]),
        "confusion_matrix_20": confusion_matrix_svg(
            _matrix(20, seed=3), [f"label {i:02d}" for i in range(19)] + ["a very long class name indeed"]
        ),
        "learning_curve": learning_curve_svg(CURVE),
        "learning_curve_one_point": learning_curve_svg(
            [{"version": "v1", "n_labels": 40, "accuracy": 0.55, "ci_low": 0.40, "ci_high": 0.69}]
        ),
        "learning_curve_empty": learning_curve_svg([]),
    }

    for name, svg in pictures.items():
        png = _render(name, svg, tmp_path / "chromium-profile")
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 100
            # Something was drawn: the page is not a blank white rectangle.
            extrema = image.convert("L").getextrema()
            assert extrema[0] < 128, name

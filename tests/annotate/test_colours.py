"""Label colours: the WCAG contrast formula against its worked values, and the default palette."""

import pytest

from annotate.colours import (
    PALETTE,
    contrast_ratio,
    label_colour,
    relative_luminance,
    rgb,
    text_colour_for,
)
from tests.factories import make_project


def test_white_on_black_is_21_to_1_and_a_colour_on_itself_is_1():
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#4c78a8", "#4c78a8") == pytest.approx(1.0)


def test_grey_777_on_white_falls_just_short_of_4_5():
    # The value WebAIM's checker and the WCAG understanding documents give: 4.48:1.
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.005)
    assert contrast_ratio("#767676", "#ffffff") >= 4.5  # the lightest grey that passes on white


def test_relative_luminance_of_the_primaries_are_the_wcag_coefficients():
    assert relative_luminance("#ff0000") == pytest.approx(0.2126)
    assert relative_luminance("#00ff00") == pytest.approx(0.7152)
    assert relative_luminance("#0000ff") == pytest.approx(0.0722)
    assert relative_luminance("#000") == 0.0
    assert relative_luminance("#fff") == pytest.approx(1.0)


def test_text_colour_is_the_one_with_the_higher_contrast():
    assert text_colour_for("#000000") == "#ffffff"
    assert text_colour_for("#ffffff") == "#000000"
    assert text_colour_for("#eeca3b") == "#000000"  # yellow
    assert text_colour_for("#1d2433") == "#ffffff"  # the page's ink


@pytest.mark.parametrize("colour", PALETTE)
def test_every_palette_colour_reaches_4_5_with_its_text_colour(colour):
    text = text_colour_for(colour)
    other = "#ffffff" if text == "#000000" else "#000000"
    assert contrast_ratio(text, colour) >= 4.5
    assert contrast_ratio(text, colour) >= contrast_ratio(other, colour)


def test_any_colour_reaches_4_5_with_the_better_of_black_and_white():
    # Every 8th step of each channel: the claim in annotate/colours.py's docstring.
    worst = min(
        contrast_ratio(text_colour_for(c), c)
        for c in (
            f"#{r:02x}{g:02x}{b:02x}"
            for r in range(0, 256, 8)
            for g in range(0, 256, 8)
            for b in range(0, 256, 8)
        )
    )
    assert worst >= 4.5


def test_palette_colours_are_distinct_and_cycle():
    assert len(set(PALETTE)) == len(PALETTE) == 10
    assert [label_colour(i) for i in range(12)] == [*PALETTE, PALETTE[0], PALETTE[1]]


@pytest.mark.parametrize("bad", ["", "red", "#12345", "#ggg000", None])
def test_a_malformed_colour_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="not a colour"):
        rgb(bad)


@pytest.mark.django_db
def test_a_new_projects_labels_get_the_palette_in_order_unless_given_a_colour():
    project = make_project(labels=["car", "person", {"name": "tree", "colour": "#123456"}, "sign"])
    colours = list(project.labels.order_by("order").values_list("colour", flat=True))
    assert colours == [PALETTE[0], PALETTE[1], "#123456", PALETTE[3]]

"""The text-span editor in a real browser (Debian's chromium through Playwright): marking by mouse
and by keyboard in text with emoji, combining accents, CJK and CRLF; proposals; overlaps; the
browser tokenizer against annotate/tokens.py; screenshots at two sizes."""

import pytest

from annotate.models import Annotation
from annotate.tokens import grapheme_boundaries, tokens
from tests.browser.conftest import log_in, screenshot
from tests.factories import PASSWORD, ItemFactory, UserFactory, make_project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABELS = ["PER", "LOC", "ORG"]  # hotkeys 1, 2, 3
HARD_TEXT = "Ana 👍🏽 met Jose\u0301 in 東京タワー.\r\nThen Zoë flew to Paris, France.\r\nR2-D2 stayed."


def _spans_project(annotator, **fields):
    return make_project(
        name=fields.pop("name", "Entities"), task_type="text_spans", labels=LABELS,
        members=[(annotator, "annotator")], **fields,
    )  # fmt: skip


def _open(page, live_server, project):
    page.goto(f"{live_server.url}/projects/{project.pk}/label/")
    try:
        page.wait_for_selector("[data-labeling][data-state=ready]", timeout=10_000)
    except Exception:
        raise AssertionError(f"the page did not get ready: {page.console_errors}") from None
    page.wait_for_selector("[data-item-text][data-span-count]")
    page.evaluate("window.__noReload = true")


def _wait_for_spans(page, n):
    page.wait_for_function(f"document.querySelector('[data-item-text]').dataset.spanCount === '{n}'")


def _wait_for_saved(page, n):
    page.wait_for_function(f"Number(document.querySelector('[data-labeling]').dataset.saved || 0) >= {n}")


def _units(text: str, cp: int) -> int:
    """The UTF-16 offset of code point `cp` of `text` (what the browser counts)."""
    return len(text[:cp].encode("utf-16-le")) // 2


def _selection(page):
    value = page.get_attribute("[data-item-text]", "data-selection")
    return None if value is None else tuple(int(x) for x in value.split(":"))


# Points on the screen of UTF-16 offsets of the shown text (the middle of the character there).
_POINT_AT = """
([offset, side]) => {
  const walker = document.createTreeWalker(document.querySelector('[data-item-text]'), NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const u = Number(node.parentElement.dataset.u);
    if (offset >= u && offset < u + node.length) {
      const range = document.createRange();
      range.setStart(node, offset - u);
      range.setEnd(node, offset - u + 1);
      const box = range.getBoundingClientRect();
      return [box.left + box.width * side, box.top + box.height / 2];
    }
  }
  return null;
}
"""


def _point(page, offset, side=0.5):
    return page.evaluate(_POINT_AT, [offset, side])


# Selects UTF-16 [start, end) of the shown text as a drag would leave it, then releases the mouse.
_SELECT_UNITS = """
([start, end]) => {
  const text = document.querySelector('[data-item-text]');
  const at = (offset) => {
    const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const u = Number(node.parentElement.dataset.u);
      if (offset >= u && offset <= u + node.length) return [node, offset - u];
    }
  };
  const range = document.createRange();
  range.setStart(...at(start));
  range.setEnd(...at(end));
  text.dispatchEvent(new MouseEvent('mousedown', { bubbles: true }));
  getSelection().removeAllRanges();
  getSelection().addRange(range);
  text.dispatchEvent(new MouseEvent('mouseup', { bubbles: true }));
}
"""


def test_three_spans_by_mouse_and_keys_in_text_with_emoji_accents_cjk_and_crlf(page, live_server):
    annotator = UserFactory(username="spans")
    project = _spans_project(annotator)
    item = ItemFactory(project=project, external_id="hard", text=HARD_TEXT)
    item.refresh_from_db()
    assert "\r\n" in item.text  # stored as written, CRLF kept
    log_in(page, live_server, "spans", PASSWORD)
    _open(page, live_server, project)
    assert page.text_content("[data-item-text]") == HARD_TEXT

    # 1. José by a mouse drag over "os" alone: snapped to the whole token, its accent too.
    jose = HARD_TEXT.index("Jose\u0301")
    page.mouse.move(*_point(page, _units(HARD_TEXT, jose + 1), 0.2))
    page.mouse.down()
    page.mouse.move(*_point(page, _units(HARD_TEXT, jose + 2), 0.8), steps=4)
    page.mouse.up()
    assert _selection(page) == (jose, jose + 5)
    page.keyboard.press("1")
    _wait_for_spans(page, 1)

    # 2. 東京 by the keyboard: → moves by token, Shift+→ extends by one.
    tokyo = HARD_TEXT.index("東京")
    after_jose = [s for s, _ in tokens(HARD_TEXT)].index(tokyo) - [s for s, _ in tokens(HARD_TEXT)].index(
        jose
    )
    for _ in range(after_jose):
        page.keyboard.press("ArrowRight")
    assert _selection(page) == (tokyo, tokyo + 1)
    page.keyboard.press("Shift+ArrowRight")
    assert _selection(page) == (tokyo, tokyo + 2)
    screenshot(page, "spans-keyboard-selection")
    page.keyboard.press("2")
    _wait_for_spans(page, 2)

    # 3. Zoë (after the first CRLF) by a double click on the word.
    zoe = HARD_TEXT.index("Zoë")
    page.mouse.dblclick(*_point(page, _units(HARD_TEXT, zoe + 1)))
    assert _selection(page) == (zoe, zoe + 3)
    page.keyboard.press("1")
    _wait_for_spans(page, 3)
    assert page.locator("[data-editor-side] [data-span-key]").count() == 3
    assert page.locator("[data-item-text] mark[data-labels~=LOC]").inner_text() == "東京"

    screenshot(page, "spans-hard-text")
    page.keyboard.press("Control+z")
    _wait_for_spans(page, 2)
    page.keyboard.press("Control+y")
    _wait_for_spans(page, 3)
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)

    stored = Annotation.objects.get(item=item).value["spans"]
    assert stored == [
        {"start": jose, "end": jose + 5, "label": "PER"},
        {"start": tokyo, "end": tokyo + 2, "label": "LOC"},
        {"start": zoe, "end": zoe + 3, "label": "PER"},
    ]
    assert [HARD_TEXT[s["start"] : s["end"]] for s in stored] == ["Jose\u0301", "東京", "Zoë"]
    assert page.evaluate("window.__noReload") is True
    assert not page.console_errors, page.console_errors


def test_character_precision_widens_a_selection_to_whole_graphemes(page, live_server):
    annotator = UserFactory(username="chars")
    project = _spans_project(annotator, spans_snap_to_tokens=False)
    text = "Ana 👍🏽 met Jose\u0301 in 東京."
    item = ItemFactory(project=project, external_id="chars", text=text)
    log_in(page, live_server, "chars", PASSWORD)
    _open(page, live_server, project)
    thumb = _units(text, text.index("👍"))
    # From between the two surrogates of 👍 to between "e" and its combining accent.
    page.evaluate(_SELECT_UNITS, [thumb + 1, _units(text, text.index("Jose\u0301") + 4)])
    assert _selection(page) == (text.index("👍"), text.index("Jose\u0301") + 5)
    page.keyboard.press("1")
    _wait_for_spans(page, 1)
    # Inside one token: character precision keeps "os" (no snapping to "José").
    jose = text.index("Jose\u0301")
    page.evaluate(_SELECT_UNITS, [_units(text, jose + 1), _units(text, jose + 2)])
    page.keyboard.press("Escape")
    assert _selection(page) is None
    page.evaluate(_SELECT_UNITS, [_units(text, jose + 1), _units(text, jose + 3)])
    assert _selection(page) == (jose + 1, jose + 3)
    page.keyboard.press("Delete")  # nothing selected to delete: the selection stays
    page.keyboard.press("3")
    # Overlap is not allowed, so "os" inside the first span is refused.
    _wait_for_spans(page, 1)
    assert "overlaps" in page.inner_text("[data-status]")
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    assert Annotation.objects.get(item=item).value == {
        "spans": [{"start": text.index("👍"), "end": jose + 5, "label": "PER"}]
    }


def test_accepting_a_span_proposal_stores_it_and_editing_one_is_recorded(page, live_server):
    annotator = UserFactory(username="accept")
    project = _spans_project(annotator)
    text = "Grace Hopper joined Remington Rand in Philadelphia."
    proposed = {
        "spans": [
            {"start": 0, "end": 12, "label": "PER"},
            {"start": 20, "end": 34, "label": "ORG"},
            {"start": 38, "end": 50, "label": "LOC"},
        ]
    }
    first = ItemFactory(
        project=project, external_id="a", text=text, proposal={"value": proposed, "score": None}
    )
    second = ItemFactory(
        project=project, external_id="b", text=text, proposal={"value": proposed, "score": None}
    )
    log_in(page, live_server, "accept", PASSWORD)
    _open(page, live_server, project)
    assert page.inner_text("[data-proposal]") == "Proposed: 3 spans. Enter accepts."
    _wait_for_spans(page, 3)
    assert page.locator("[data-item-text] mark").count() == 3
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{second.pk}'")
    _wait_for_spans(page, 3)

    # The second: click "Remington Rand" and make it LOC, Tab to Philadelphia and delete it.
    page.click("[data-item-text] mark[data-labels=ORG]")
    assert page.get_attribute("[data-label=ORG]", "aria-pressed") == "true"
    page.keyboard.press("2")
    page.wait_for_selector("[data-item-text] mark.is-selected[data-labels=LOC]")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Philadelphia"
    page.keyboard.press("Delete")
    _wait_for_spans(page, 2)
    page.keyboard.press("Enter")
    _wait_for_saved(page, 2)

    accepted = Annotation.objects.get(item=first)
    assert (accepted.value, accepted.proposal_value, accepted.proposal_accepted) == (proposed, proposed, True)
    edited = Annotation.objects.get(item=second)
    assert edited.value == {
        "spans": [{"start": 0, "end": 12, "label": "PER"}, {"start": 20, "end": 34, "label": "LOC"}]
    }
    assert edited.proposal_accepted is False
    assert not page.console_errors, page.console_errors


def test_undo_takes_back_a_relabel_and_a_delete_so_the_proposal_is_accepted_as_shown(page, live_server):
    annotator = UserFactory(username="undo")
    project = _spans_project(annotator)
    text = "Grace Hopper joined Remington Rand."
    proposed = {"spans": [{"start": 0, "end": 12, "label": "PER"}, {"start": 20, "end": 34, "label": "ORG"}]}
    item = ItemFactory(
        project=project, external_id="u", text=text, proposal={"value": proposed, "score": None}
    )
    log_in(page, live_server, "undo", PASSWORD)
    _open(page, live_server, project)
    page.keyboard.press("3")  # nothing selected: says what to do, marks nothing
    assert page.get_attribute("[data-status]", "class") == "error"
    assert "Select some text first" in page.inner_text("[data-status]")
    page.click("[data-editor-side] [data-span-key]:first-child >> nth=0")  # Grace Hopper, from the list
    page.keyboard.press("2")
    page.wait_for_selector("[data-item-text] mark.is-selected[data-labels=LOC]")
    page.keyboard.press("Shift+Tab")  # back round to the last span
    page.keyboard.press("Backspace")
    _wait_for_spans(page, 1)
    page.keyboard.press("Escape")
    assert page.locator("[data-item-text] mark.is-selected").count() == 0
    page.keyboard.press("Control+z")  # the delete
    _wait_for_spans(page, 2)
    page.keyboard.press("Control+z")  # the relabel
    page.wait_for_selector("[data-item-text] mark[data-labels=PER]")
    page.keyboard.press("Control+z")  # nothing left to undo in this item
    assert page.inner_text("[data-status]") == "Nothing to undo in this item."
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    stored = Annotation.objects.get(item=item)
    assert (stored.value, stored.proposal_accepted) == (proposed, True)


def _mark_paris_then_paris_france(page, text):
    paris = text.index("Paris")
    page.mouse.dblclick(*_point(page, _units(text, paris + 1)))
    page.keyboard.press("2")
    _wait_for_spans(page, 1)
    page.mouse.dblclick(*_point(page, _units(text, paris + 1)))
    for _ in range(2):  # ", France"
        page.keyboard.press("Shift+ArrowRight")
    assert _selection(page) == (paris, paris + len("Paris, France"))
    page.keyboard.press("2")


def test_overlapping_spans_are_refused_unless_the_project_allows_them(page, live_server):
    annotator = UserFactory(username="overlap")
    text = "They met in Paris, France."
    strict = _spans_project(annotator, name="Strict")
    ItemFactory(project=strict, external_id="s", text=text)
    nested = _spans_project(annotator, name="Nested", spans_may_overlap=True)
    item = ItemFactory(project=nested, external_id="n", text=text)
    log_in(page, live_server, "overlap", PASSWORD)

    _open(page, live_server, strict)
    _mark_paris_then_paris_france(page, text)
    assert page.get_attribute("[data-status]", "class") == "error"
    assert "overlaps the LOC span “Paris”" in page.inner_text("[data-status]")
    assert page.get_attribute("[data-item-text]", "data-span-count") == "1"

    _open(page, live_server, nested)
    _mark_paris_then_paris_france(page, text)
    _wait_for_spans(page, 2)
    # Drawn nested: "Paris" carries both labels, each span its own tag.
    assert page.locator("[data-item-text] mark[data-labels='LOC LOC']").count() == 1
    assert page.locator("[data-item-text] .span-tag").count() == 2
    screenshot(page, "spans-nested")
    page.keyboard.press("Enter")
    _wait_for_saved(page, 1)
    paris = text.index("Paris")
    assert Annotation.objects.get(item=item).value == {
        "spans": [
            {"start": paris, "end": paris + 5, "label": "LOC"},
            {"start": paris, "end": paris + 13, "label": "LOC"},
        ]
    }


TOKENIZER_TEXTS = [
    HARD_TEXT,
    "Ana 👍🏽 met Jose\u0301 \U0001f468\u200d\U0001f469\u200d\U0001f467 🇫🇷🇩🇪 1\ufe0f\u20e3 \u263a\ufe0f",
    "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f end",
    "\u0301orphan mark, a\u200db, Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358\u0359" * 3
    + "a"
    + "\u0300" * 80,
    "東京タワーへ行った。ソニー株式会社とｶﾀｶﾅ、한국어 텍스트, ภาษาไทย, नमस्ते दुनिया, مرحبا بالعالم",
    "R2-D2 snake_case 3.14 l’été ﬁne e-mail: ann@example.org https://x.io/a?b=c #tag $5 100%",
    "spaces:\u00a0nbsp\u0085nel\u2028ls\u3000ideo\u180emvs\ufeffbom\x1cfs\ttab\x0bvt\r\ncrlf\n\n\rcr",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 👍🏽👍🏽 a👍🏽b e\u0301\u0302x",
]


def test_the_browser_tokenizer_equals_tokens_py(page, live_server):
    page.goto(f"{live_server.url}/accounts/login/")
    module = f"{live_server.url}/static/annotate/js/tokens.js"
    found = page.evaluate(
        """async ([url, texts]) => {
          const t = await import(url);
          return texts.map((text) => ({
            tokens: t.tokens(text), bounds: Array.from(t.graphemeBoundaries(text)),
          }));
        }""",
        [module, TOKENIZER_TEXTS],
    )
    for text, got in zip(TOKENIZER_TEXTS, found, strict=True):
        want = [[_units(text, s), _units(text, e)] for s, e in tokens(text)]
        assert got["tokens"] == want, text
        assert got["bounds"] == sorted(_units(text, b) for b in grapheme_boundaries(text)), text


def _filler(n_chars: int) -> tuple[str, list[dict]]:
    """About `n_chars` of sentences in paragraphs, and 10 entity spans in them (code points)."""
    names = [("Ada Lovelace", "PER"), ("London", "LOC"), ("Analytical Engine Society", "ORG"),
             ("Zoë Kravitz", "PER"), ("東京", "LOC")]  # fmt: skip
    parts, spans, size = [], [], 0
    i = 0
    while size < n_chars:
        name, label = names[i % len(names)]
        sentence = f"In the year {1800 + i}, {name} wrote a long letter about numbers and machines. "
        if i % 4 == 3:
            sentence += "\r\n\r\n"
        if len(spans) < 10 and i % 2 == 0:
            start = size + sentence.index(name)
            spans.append({"start": start, "end": start + len(name), "label": label})
        parts.append(sentence)
        size += len(sentence)
        i += 1
    return "".join(parts)[:n_chars], spans


@pytest.mark.parametrize("width,height", [(1280, 720), (2560, 1440)])
def test_span_editor_screenshots_have_no_horizontal_scroll(page, live_server, width, height):
    annotator = UserFactory(username="screens")
    project = _spans_project(annotator, instructions="Mark people, places and organisations.")
    text, spans = _filler(2000)
    assert len(text) == 2000 and len(spans) == 10
    ItemFactory(
        project=project, external_id="long", text=text, proposal={"value": {"spans": spans}, "score": None}
    )
    page.set_viewport_size({"width": width, "height": height})
    log_in(page, live_server, "screens", PASSWORD)
    _open(page, live_server, project)
    _wait_for_spans(page, 10)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.wait_for_selector("[data-item-text] mark.is-selected")
    screenshot(page, f"spans-{width}x{height}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("(() => { const t = document.querySelector('[data-item-text]');"
                         " return t.scrollWidth <= t.clientWidth; })()")  # fmt: skip
    assert not page.console_errors, page.console_errors


def test_go_back_to_a_span_item_and_change_its_answer(page, live_server):
    """The history key brings back my earlier spans pre-filled; a relabel and Enter store a new
    annotation beside the old one, which replaces my vote, and the queue item comes back."""
    annotator = UserFactory(username="again")
    project = _spans_project(annotator)
    text = "Grace Hopper joined Remington Rand in Philadelphia."
    proposed = {"spans": [{"start": 0, "end": 12, "label": "PER"}, {"start": 20, "end": 34, "label": "LOC"}]}
    first = ItemFactory(
        project=project, external_id="a", text=text, proposal={"value": proposed, "score": None}
    )
    second = ItemFactory(project=project, external_id="b", text="Ada Lovelace wrote notes.")
    log_in(page, live_server, "again", PASSWORD)
    _open(page, live_server, project)
    _wait_for_spans(page, 2)
    page.keyboard.press("Enter")  # the proposal as it is: Remington Rand a place, wrongly
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{second.pk}'")
    _wait_for_saved(page, 1)

    page.keyboard.press("[")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{first.pk}'")
    _wait_for_spans(page, 2)  # my answer, pre-filled
    page.click("[data-item-text] mark[data-labels=LOC]")
    page.keyboard.press("3")  # ORG
    page.wait_for_selector("[data-item-text] mark.is-selected[data-labels=ORG]")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('[data-canvas]').dataset.itemId === '{second.pk}'")
    page.wait_for_function("Number(document.querySelector('[data-labeling]').dataset.changed || 0) >= 1")

    rows = list(Annotation.objects.filter(item=first).order_by("id").values_list("value", "counted"))
    changed = {"spans": [{"start": 0, "end": 12, "label": "PER"}, {"start": 20, "end": 34, "label": "ORG"}]}
    assert rows == [(proposed, True), (changed, False)]
    first.refresh_from_db()
    assert (first.final_value, first.annotation_count) == (changed, 1)
    assert page.evaluate("window.__noReload") is True
    assert not page.console_errors, page.console_errors

"""The data of the demo's boxes and spans projects, made from files that installed packages ship.

No Django and no scikit-learn import (the web process stays light): files are found through
`importlib.util.find_spec`, images are drawn with Pillow.

- Digit canvases: scikit-learn's bundled 8×8 digits, several to a 320×240 PNG, each scaled up
  by a whole factor (nearest neighbour, 5 to 9 times: 40 to 72 pixels) and set at a random free
  place; a box is the digit's inked cells, so every box is known. Seeded: the same canvases on
  every machine.
- Description passages: the prose of scikit-learn's data set descriptions
  (`sklearn/datasets/descr/*.rst`: "The famous Iris database, first used by Sir R.A. Fisher."),
  then the citations in its docstrings' References sections ("L. Breiman, J. Friedman, R. Olshen,
  and C. Stone, "Classification and Regression Trees", Wadsworth, Belmont, CA, 1984."): people,
  institutions, publishers and places. Markup (code, tables, directives, roles, links) is left
  out; what is kept is the files' own words, each run of white space made one space.
"""

import ast
import importlib.util
import io
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

CANVAS_WIDTH = 320
CANVAS_HEIGHT = 240
SCALES = (5, 6, 7, 8, 9)  # an 8×8 digit becomes 40 to 72 pixels square
DIGITS_PER_CANVAS = (4, 9)
GAP = 4  # pixels kept free around each digit, so that no two boxes touch
INK = 1  # a cell is ink when its value (0–16) is at least this

# A block with any of these is markup, not prose: roles, literals, doctests, literal blocks,
# directives, table and heading rules, links, substitutions.
_MARKUP = re.compile(r":[a-z]+:`|``|>>>|::\s*$|^\s*\.\. |^\s*[=\-~*^+]{3,}|https?://|ftp\b|\||`_")
_BULLET = re.compile(r"^(?:[-*]|\(?\d+[.)])\s+")
# A citation's own mark: ".. [1] ", "[2] ", "* ", "- ".
_CITATION_MARK = re.compile(r"^(?:\.\. )?(?:\[[^\]]{1,12}\]\s*|[-*]\s+)+")
PASSAGE_MIN = 40


@dataclass(frozen=True)
class DigitCanvas:
    name: str  # the image's file name, its external id
    png: bytes
    width: int
    height: int
    boxes: list[dict] = field(default_factory=list)  # {"x","y","w","h","label"} in fractions


@dataclass(frozen=True)
class Passage:
    source: str  # the file inside the package, e.g. "sklearn/datasets/descr/iris.rst"
    text: str


def _sklearn_dir() -> Path:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-learn is not installed: it ships the demo's digits and descriptions")
    return Path(next(iter(spec.submodule_search_locations)))


def _ink_cells(pixels: list[int]) -> tuple[int, int, int, int]:
    """(first column, first row, last column, last row) of the cells holding ink."""
    rows = [r for r in range(8) if any(pixels[r * 8 + c] >= INK for c in range(8))]
    cols = [c for c in range(8) if any(pixels[r * 8 + c] >= INK for r in range(8))]
    return cols[0], rows[0], cols[-1], rows[-1]


def _place(rng: random.Random, sizes: list[int], width: int, height: int) -> list[tuple[int, int, int]]:
    """(left, top, size) for as many of `sizes` as fit without overlapping (gap included)."""
    placed: list[tuple[int, int, int]] = []
    for size in sizes:
        for _ in range(60):
            left = rng.randrange(GAP, width - size - GAP + 1)
            top = rng.randrange(GAP, height - size - GAP + 1)
            if all(
                left + size + GAP <= x or x + s + GAP <= left or top + size + GAP <= y or y + s + GAP <= top
                for x, y, s in placed
            ):
                placed.append((left, top, size))
                break
    return placed


def digit_canvases(
    pixels: list[list[int]],
    targets: list[int],
    *,
    count: int,
    seed: int = 14,
    width: int = CANVAS_WIDTH,
    height: int = CANVAS_HEIGHT,
) -> list[DigitCanvas]:
    """`count` canvases of several digits each, taken in the data set's order, with their boxes."""
    from PIL import Image

    rng = random.Random(seed)
    canvases = []
    position = 0
    for number in range(count):
        wanted = rng.randint(*DIGITS_PER_CANVAS)
        sizes = [8 * rng.choice(SCALES) for _ in range(wanted)]
        canvas = Image.new("L", (width, height), 255)
        boxes = []
        for left, top, size in _place(rng, sizes, width, height):
            digit = pixels[position % len(pixels)]
            label = str(targets[position % len(pixels)])
            position += 1
            tile = Image.new("L", (8, 8))
            tile.putdata([255 - round(v * 255 / 16) for v in digit])
            canvas.paste(tile.resize((size, size), Image.Resampling.NEAREST), (left, top))
            scale = size // 8
            c0, r0, c1, r1 = _ink_cells(digit)
            boxes.append(
                {
                    "x": (left + c0 * scale) / width,
                    "y": (top + r0 * scale) / height,
                    "w": (c1 - c0 + 1) * scale / width,
                    "h": (r1 - r0 + 1) * scale / height,
                    "label": label,
                }
            )
        out = io.BytesIO()
        canvas.save(out, format="PNG", optimize=True)
        boxes.sort(key=lambda b: (b["y"], b["x"]))
        canvases.append(
            DigitCanvas(
                name=f"digits-canvas-{number:03d}.png",
                png=out.getvalue(),
                width=width,
                height=height,
                boxes=boxes,
            )
        )
    return canvases


def _passages(text: str) -> list[str]:
    """The prose of one descr file: paragraphs and list entries, markup blocks left out."""
    passages = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines or any(_MARKUP.search(line) for line in block.splitlines()):
            continue
        entries: list[list[str]] = []
        for line in lines:
            if _BULLET.match(line) or not entries:
                entries.append([_BULLET.sub("", line)])
            else:
                entries[-1].append(line)
        for entry in entries:
            joined = " ".join(" ".join(entry).split())
            if not joined.startswith(":"):  # field lists (":Creator: …") are a table, not prose
                passages.append(joined)
    return passages


def _references(docstring: str) -> list[str]:
    """The entries of a numpydoc "References" section: one citation each, markup removed."""
    section = docstring.split("References\n----------", 1)[1]
    section = re.split(r"\n\S[^\n]*\n-{3,}", section)[0]  # up to the next section's heading
    entries = []
    for entry in re.split(r"\n\s*\n|\n(?=\s*\.\. \[)", section):
        text = _CITATION_MARK.sub("", " ".join(entry.split()))
        if not _MARKUP.search(text) and ":doi:" not in text:
            entries.append(text)
    return entries


def description_passages() -> list[Passage]:
    """scikit-learn's descriptions of its data sets (descr/*.rst, in name order), then the citations
    in its docstrings (its modules in path order, tests left out), each once; passages shorter than
    PASSAGE_MIN characters or with no capitalised word after the first (no name to mark) are
    left out."""
    root = _sklearn_dir()
    found: dict[str, Passage] = {}

    def keep(source: str, text: str) -> None:
        if len(text) >= PASSAGE_MIN and re.search(r"\s[A-Z]", text) and text not in found:
            found[text] = Passage(source=source, text=text)

    for path in sorted((root / "datasets" / "descr").glob("*.rst")):
        for text in _passages(path.read_text(encoding="utf-8")):
            keep(f"sklearn/datasets/descr/{path.name}", text)
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "tests" in path.relative_to(root).parts or "References\n" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node)
                if docstring and "References\n----------" in docstring:
                    for text in _references(docstring):
                        keep(f"sklearn/{path.relative_to(root).as_posix()}", text)
    return list(found.values())


def passage_source_text(source: str) -> str:
    """The file a passage came from ("sklearn/…"), every run of white space made one space: each
    passage of description_passages is a substring of it."""
    path = _sklearn_dir().joinpath(*source.split("/")[1:])
    return " ".join(path.read_text(encoding="utf-8").split())

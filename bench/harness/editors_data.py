"""The editors benchmark's items: photographs as 1024×768 JPEGs with 10 boxes each, and
2,000-character texts with 10 spans each, the boxes and spans to be imported as proposals.

- Images: the two photographs scikit-learn ships (`sklearn/datasets/images/china.jpg` and
  `flower.jpg`, 640×427), a different seeded crop of one of them (mirrored every other item)
  scaled to 1024×768 and saved as a JPEG at quality 85: real picture content, so the files
  (about 100–200 kB) and their decoding cost what a photograph costs. Boxes are seeded random
  rectangles of 3–25% of each side.
- Texts: the demo's passages of scikit-learn's documentation (annotate.demo_sources) run
  together from a different starting passage per item and cut to exactly 2,000 characters;
  the spans are 10 whole tokens of the stated tokenizer (annotate/tokens.py), capitalised words
  first, spread over the text.

Pillow and the repository's own modules only; annotate.demo_sources and annotate.tokens need no
Django.
"""

import importlib.util
import io
import random
from pathlib import Path

BOX_SIZE = (1024, 768)
BOXES_PER_IMAGE = 10
BOX_LABELS = ["person", "vehicle", "animal"]
TEXT_LENGTH = 2000
SPANS_PER_TEXT = 10
SPAN_LABELS = ["PERSON", "ORG", "LOC", "MISC"]


def _photographs() -> list:
    from PIL import Image

    spec = importlib.util.find_spec("sklearn")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "images"
    photos = []
    for name in ("china.jpg", "flower.jpg"):
        with Image.open(folder / name) as image:
            photos.append(image.convert("RGB"))
    return photos


def box_images(count: int, *, seed: int = 7) -> list[tuple[str, bytes, list[dict]]]:
    """`count` (file name, JPEG bytes, boxes in fractions) of BOX_SIZE, BOXES_PER_IMAGE boxes each."""
    from PIL import Image, ImageOps

    rng = random.Random(seed)
    photos = _photographs()
    made = []
    for n in range(count):
        photo = photos[n % len(photos)]
        width, height = photo.size
        crop_w = rng.randint(width * 6 // 10, width)
        crop_h = min(height, crop_w * 3 // 4)
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        picture = photo.crop((left, top, left + crop_w, top + crop_h)).resize(
            BOX_SIZE, Image.Resampling.BILINEAR
        )
        if n % 2:
            picture = ImageOps.mirror(picture)
        out = io.BytesIO()
        picture.save(out, format="JPEG", quality=85)
        boxes = []
        for b in range(BOXES_PER_IMAGE):
            w, h = rng.uniform(0.03, 0.25), rng.uniform(0.03, 0.25)
            boxes.append(
                {
                    "x": round(rng.uniform(0, 1 - w), 6),
                    "y": round(rng.uniform(0, 1 - h), 6),
                    "w": round(w, 6),
                    "h": round(h, 6),
                    "label": BOX_LABELS[b % len(BOX_LABELS)],
                }
            )
        made.append((f"photo-{n:04d}.jpg", out.getvalue(), boxes))
    return made


def span_texts(count: int) -> list[tuple[str, str, list[dict]]]:
    """`count` (external id, text of TEXT_LENGTH characters, SPANS_PER_TEXT spans)."""
    from annotate.demo_sources import description_passages
    from annotate.tokens import tokens

    passages = [p.text for p in description_passages()]
    made = []
    for n in range(count):
        parts, length, i = [], 0, n
        while length < TEXT_LENGTH:
            parts.append(passages[i % len(passages)])
            length += len(parts[-1]) + 1
            i += 1
        text = " ".join(parts)[:TEXT_LENGTH]
        words = [(s, e) for s, e in tokens(text) if text[s:e].isalpha() and e < TEXT_LENGTH]
        named = [t for t in words if text[t[0]].isupper()]
        pool = named if len(named) >= SPANS_PER_TEXT else words
        step = len(pool) / SPANS_PER_TEXT
        chosen = [pool[int(k * step)] for k in range(SPANS_PER_TEXT)]
        spans = [
            {"start": s, "end": e, "label": SPAN_LABELS[k % len(SPAN_LABELS)]}
            for k, (s, e) in enumerate(chosen)
        ]
        made.append((f"text-{n:04d}", text, spans))
    return made

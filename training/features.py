"""Model inputs for items, computed once per item and cached on this machine (LABELLOOP_CACHE_DIR).

Text: hashed n-gram features, or sentence embeddings (both stateless, so a cached row never goes
stale); a retrain featurizes only the items it has not seen and refits the classifier. Images:
the stored file read by Pillow, resized to the network's size, cached as uint8. A cache is per
machine, never shared: a worker elsewhere builds its own from the items and the stored files.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from annotate.models import Item, Project

IMAGE_SIZE = 32


def _cache_dir(project: Project) -> Path:
    path = Path(settings.LABELLOOP_CACHE_DIR) / "features" / f"project-{project.pk}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def text_features(*, project: Project, item_ids: Sequence[int], featurizer, progress=None):
    """The feature rows of `item_ids` (a CSR matrix, in that order), featurizing only uncached items
    (`progress(done, total)` over those)."""
    from training.backends.text import TextFeatures

    path = _cache_dir(project) / f"text-features-{featurizer.fingerprint[:12]}.npz"
    cached = TextFeatures.load_npz(path, featurizer) if path.exists() else None
    known = set(cached.item_ids.tolist()) if cached is not None else set()
    missing = [i for i in dict.fromkeys(item_ids) if i not in known]
    if missing:
        texts = dict(Item.objects.filter(pk__in=missing).values_list("pk", "text"))
        fresh = TextFeatures.build(missing, [texts[i] for i in missing], featurizer, progress=progress)
        cached = fresh if cached is None else TextFeatures.concat([cached, fresh])
        cached.save_npz(path)
    return cached.rows(list(item_ids))


class PoolTextFeatures:
    """Feature rows for scoring a pool: read from the project's cache where it holds them (the
    cold start caches up to 10,000 open items, training/coldstart.py), hashed otherwise. Unlike
    text_features it never grows the cache: the pool is scored once per run, and caching every
    open item of a 100,000-item project would write a file that large on each run.

    A costly featurizer (the sentence encoder: about 10 ms a text) is the exception: every item it
    embeds joins the cache, in memory while the pool is scored, written once by `save()` at the end
    (not once per batch), so that a re-scoring embeds only the items new since the last one."""

    def __init__(self, *, project: Project, featurizer):
        from training.backends.text import TextFeatures

        self.grows = bool(getattr(featurizer, "cache_every_item", False))
        self.path = _cache_dir(project) / f"text-features-{featurizer.fingerprint[:12]}.npz"
        self.featurizer = featurizer
        self.cached = TextFeatures.load_npz(self.path, featurizer) if self.path.exists() else None
        self.known = np.sort(self.cached.item_ids) if self.cached is not None else np.zeros(0, np.int64)
        self.changed = False

    def rows(self, item_ids: Sequence[int], texts: Sequence[str]):
        """The rows of `item_ids` (with their `texts`, in that order) as a CSR matrix."""
        import scipy.sparse as sp

        from training.backends.text import TextFeatures

        ids = np.asarray(item_ids, dtype=np.int64)
        at = np.searchsorted(self.known, ids)
        hit = at < len(self.known)
        hit[hit] = self.known[at[hit]] == ids[hit]
        if hit.all():
            return self.cached.rows(ids)
        fresh = np.flatnonzero(~hit)
        if self.grows:
            new = TextFeatures.build(ids[fresh], [texts[i] for i in fresh], self.featurizer)
            self.cached = new if self.cached is None else TextFeatures.concat([self.cached, new])
            self.known = np.sort(self.cached.item_ids)
            self.changed = True
            return self.cached.rows(ids)
        if not hit.any():
            return self.featurizer.featurize(list(texts))
        parts = sp.vstack(
            [self.cached.rows(ids[hit]), self.featurizer.featurize([texts[i] for i in fresh])],
            format="csr",
            dtype=np.float32,
        )
        # parts holds the hits, then the fresh rows: put each back at its place.
        order = np.concatenate([np.flatnonzero(hit), fresh])
        return parts[np.argsort(order, kind="stable")]

    def save(self) -> None:
        """Write the rows a growing cache gained (once, after the pool is scored)."""
        if self.changed:
            self.cached.save_npz(self.path)
            self.changed = False


def image_arrays(*, project: Project, item_ids: Sequence[int], size: int = IMAGE_SIZE) -> np.ndarray:
    """Images of `item_ids` as float32 (n, 1, size, size) in [0, 1], reading only uncached files."""
    from PIL import Image

    from training.backends.artifacts import atomic_write_npz, read_npz
    from training.backends.image import images_to_pixels

    path = _cache_dir(project) / f"images-{size}.npz"
    ids = np.asarray([], dtype=np.int64)
    pixels = np.zeros((0, 1, size, size), dtype=np.uint8)
    if path.exists():
        arrays = read_npz(path)
        ids, pixels = arrays["item_ids"], arrays["pixels"]
    known = set(ids.tolist())
    missing = [i for i in dict.fromkeys(item_ids) if i not in known]
    if missing:
        files = dict(Item.objects.filter(pk__in=missing).values_list("pk", "image"))
        loaded = []
        for item_id in missing:
            with (
                Item._meta.get_field("image").storage.open(files[item_id], "rb") as fh,
                Image.open(fh) as image,
            ):
                image.load()
                loaded.append(image)
        new = images_to_pixels(loaded, size=size)
        ids = np.concatenate([ids, np.asarray(missing, dtype=np.int64)])
        pixels = np.concatenate([pixels, new])
        atomic_write_npz(path, item_ids=ids, pixels=pixels)
    position = {item_id: n for n, item_id in enumerate(ids.tolist())}
    return pixels[[position[i] for i in item_ids]].astype(np.float32) / 255.0

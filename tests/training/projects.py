"""Labeled projects made from the demo's real data sets, for the training and worker tests."""

import io

from annotate import importing
from annotate.demo import digit_png, digits_arrays
from annotate.queue import annotation_submit, assignment_next
from tests.factories import UserFactory, make_project
from tests.training.data import reviews as rotten_tomatoes_reviews


def label_everything(project, user, truth_of) -> None:
    """Label every item `user` is served, with `truth_of(item)` as its one choice."""
    while (lease := assignment_next(project=project, annotator=user)) is not None:
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": [truth_of(lease.item)]}
        )


def reviews_project(n=300, *, labeled=None):
    """A text project of the first `n` Rotten Tomatoes snippets, the first `labeled` (all) labeled."""
    user = UserFactory()
    project = make_project(labels=["fresh", "rotten"], members=[(user, "annotator")])
    reviews = rotten_tomatoes_reviews()[:n]
    rows = "id,text\n" + "".join(
        f'r{i},"{r.text.replace(chr(34), chr(39))}"\n' for i, r in enumerate(reviews)
    )
    importing.import_csv(
        project=project, file=io.BytesIO(rows.encode()), filename="rt.csv", text_column="text", id_column="id"
    )
    truth = {f"r{i}": r.category for i, r in enumerate(reviews)}
    if labeled is None:
        label_everything(project, user, lambda item: truth[item.external_id])
    else:
        for _ in range(labeled):
            lease = assignment_next(project=project, annotator=user)
            annotation_submit(
                project=project, item_id=lease.item.pk, annotator=user,
                value={"choices": [truth[lease.item.external_id]]},
            )  # fmt: skip
    return project


def digits_project(n=250, *, labeled=None):
    """An image project of the first `n` scikit-learn digits as the demo's PNGs, the first
    `labeled` served (all) labeled."""
    user = UserFactory()
    project = make_project(
        task_type="image_classification", labels=[str(d) for d in range(10)], members=[(user, "annotator")]
    )
    pixels, targets = digits_arrays()
    files = [(f"d{i}.png", io.BytesIO(digit_png(pixels[i]))) for i in range(n)]
    importing.import_images(project=project, files=files)
    truth_of = lambda item: str(targets[int(item.external_id[1:-4])])  # noqa: E731
    # The file's order, not the import's random priorities: the first digits cycle through 0-9.
    project.items.update(priority=0.0)
    if labeled is None:
        label_everything(project, user, truth_of)
    for _ in range(labeled or 0):
        lease = assignment_next(project=project, annotator=user)
        annotation_submit(
            project=project, item_id=lease.item.pk, annotator=user, value={"choices": [truth_of(lease.item)]}
        )
    return project

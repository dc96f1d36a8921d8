import io
import zipfile

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from annotate.models import Annotation, Item, Project
from tests.factories import make_project

pytestmark = pytest.mark.django_db


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _png(path, size=(5, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (0, 128, 255)).save(path, format="PNG")


@pytest.fixture
def project():
    return make_project(name="Reviews", labels=["positive", "negative"])


def test_command_imports_a_csv_with_labels_and_prints_a_summary(project, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("key,body,gold\nk1,Great,positive\nk2,Awful,negative\nk3,Fine,\n")

    out, err = _run(
        project.id,
        path,
        "--text-column",
        "body",
        "--id-column",
        "key",
        "--label-column",
        "gold",
        "--source",
        "gold-2024",
    )

    assert out.strip() == "imported 3 items (2 annotations) into Reviews"
    assert "100%" in err and "3/3" in err
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["k1", "k2", "k3"]
    assert set(Annotation.objects.values_list("source", flat=True)) == {"gold-2024"}


def test_command_infers_the_format_from_the_extension(project, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"id": "a", "text": "one", "prediction": "positive"}\n{"id": "b", "text": "two"}\n')

    out, _ = _run(project.id, path)

    assert out.strip() == "imported 2 items (0 annotations) into Reviews"
    assert Item.objects.get(external_id="a").proposal == {"value": {"choices": ["positive"]}, "score": None}


def test_command_format_option_overrides_the_extension(project, tmp_path):
    path = tmp_path / "lines.data"
    path.write_text("first\nsecond\n")

    _run(project.id, path, "--format", "text")

    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["lines.data:1", "lines.data:2"]


def test_command_imports_a_folder_of_images_named_by_their_paths(tmp_path):
    project = make_project(name="Digits", labels=["3", "4"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    _png(tmp_path / "digits" / "3" / "a.png")
    _png(tmp_path / "digits" / "4" / "b.png", size=(2, 9))
    (tmp_path / "digits" / ".DS_Store").write_bytes(b"junk")

    out, _ = _run(project.id, tmp_path / "digits")

    assert out.strip() == "imported 2 items (0 annotations) into Digits"
    assert dict(Item.objects.values_list("external_id", "height")) == {"3/a.png": 4, "4/b.png": 9}


def test_command_imports_a_zip(tmp_path):
    project = make_project(name="Digits", labels=["3"], task_type=Project.TaskType.IMAGE_CLASSIFICATION)
    image = io.BytesIO()
    Image.new("L", (3, 3)).save(image, format="PNG")
    with zipfile.ZipFile(tmp_path / "digits.zip", "w") as archive:
        archive.writestr("digits/3/img_12.png", image.getvalue())

    _run(project.id, tmp_path / "digits.zip")

    assert list(Item.objects.values_list("external_id", flat=True)) == ["digits/3/img_12.png"]


def test_command_rejects_a_bad_file_with_the_error_and_stores_nothing(project, tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\nGood,positive\nSo-so,meh\n")

    with pytest.raises(CommandError) as exc:
        _run(project.id, path, "--label-column", "label")

    assert str(exc.value) == (
        "reviews.csv, line 3, field 'label': unknown label 'meh';"
        " this project's labels are: positive, negative"
    )
    assert Item.objects.count() == 0 and Annotation.objects.count() == 0


def test_command_refuses_an_unknown_project(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("x\n")

    with pytest.raises(CommandError, match="project 999999 does not exist"):
        _run(999999, path)


def test_command_refuses_an_extension_it_cannot_read(project, tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")

    with pytest.raises(
        CommandError, match="^cannot tell the format from the name 'data.xlsx'; give one of: csv,"
    ):
        _run(project.id, path)


def test_command_refuses_a_missing_file(project, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        _run(project.id, tmp_path / "nope.csv")

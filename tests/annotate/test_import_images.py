"""Image files and zips: what is stored, and the image and zip safety that refuses the rest."""

import io

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from annotate.importing import ImportRejected, images, import_image_zip, import_images
from annotate.models import Item
from tests.annotate import uploads
from tests.annotate.uploads import file, image, media_files, zip_of

pytestmark = pytest.mark.django_db

project = uploads.project
image_project = uploads.image_project
nothing_stored = uploads.nothing_stored


# Images -----------------------------------------------------------------------------------


def test_images_import_with_their_names_as_external_ids(image_project, settings):
    files = [
        ("cat.png", file(image("PNG", (8, 6)))),
        ("dog.jpg", file(image("JPEG", (10, 4)))),
        ("scan.dat", file(image("PNG", (3, 5)))),  # Pillow decides, not the name
    ]

    result = import_images(project=image_project, files=files)

    assert result.items_created == 3
    items = {i.external_id: i for i in Item.objects.filter(project=image_project)}
    assert {k: (i.width, i.height) for k, i in items.items()} == {
        "cat.png": (8, 6),
        "dog.jpg": (10, 4),
        "scan.dat": (3, 5),
    }
    assert all(i.image.name.startswith(f"projects/{image_project.id}/") for i in items.values())
    assert items["scan.dat"].image.name.endswith("scan.png")
    assert items["dog.jpg"].image.read() == files[1][1].getvalue()  # upright already: the bytes as sent
    assert len(media_files(settings)) == 3


def test_exif_rotated_jpeg_is_stored_upright_with_swapped_size(image_project):
    picture = Image.new("RGB", (40, 20), (255, 0, 0))
    picture.paste((0, 0, 255), (20, 0, 40, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[274] = 6  # "rotate 90° clockwise to display"
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif, quality=95)

    import_images(project=image_project, files=[("phone.jpg", file(buffer.getvalue()))])

    item = Item.objects.get()
    assert (item.width, item.height) == (20, 40)
    with default_storage.open(item.image.name) as stored, Image.open(stored) as upright:
        assert upright.format == "JPEG"
        assert upright.size == (20, 40)
        assert upright.getexif().get(274, 1) == 1
        top, bottom = upright.getpixel((10, 5)), upright.getpixel((10, 35))
    assert top[0] > 200 and top[2] < 60  # red went to the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_non_web_image_formats_are_stored_as_png(image_project):
    import_images(project=image_project, files=[("scan.tiff", file(image("TIFF", (7, 9))))])

    item = Item.objects.get()
    assert item.image.name.endswith(".png")
    with default_storage.open(item.image.name) as stored, Image.open(stored) as png:
        assert (png.format, png.size) == ("PNG", (7, 9))


def test_zip_imports_images_and_ignores_folders_macos_files_and_dotfiles(image_project, settings):
    archive = zip_of(
        {
            "digits/": b"",
            "digits/3/img_12.png": image("PNG", (4, 4)),
            "digits/4/img_1.jpg": image("JPEG", (6, 2)),
            "__MACOSX/digits/3/._img_12.png": b"\x00\x05\x16\x07 resource fork",
            "digits/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )

    result = import_image_zip(project=image_project, file=archive, filename="digits.zip")

    assert result.items_created == 2
    sizes = dict(Item.objects.values_list("external_id", "width"))
    assert sizes == {"digits/3/img_12.png": 4, "digits/4/img_1.jpg": 6}
    assert len(media_files(settings)) == 2


def test_images_are_refused_for_a_text_project(project, nothing_stored):
    with pytest.raises(ImportRejected) as exc:
        import_images(project=project, files=[("a.png", file(image()))])

    assert "is a text classification project: import text" in str(exc.value)


@pytest.mark.parametrize("unsafe", ["../evil.png", "/abs.png", "a/../../evil.png", "C:\\evil.png"])
def test_zip_with_an_unsafe_path_is_refused_by_name(image_project, nothing_stored, unsafe):
    archive = zip_of({"fine.png": image(), unsafe: image()})

    with pytest.raises(ImportRejected) as exc:
        import_image_zip(project=image_project, file=archive, filename="x.zip")

    assert str(exc.value).startswith(f"x.zip, entry {unsafe!r}: unsafe path")


def test_zip_with_a_non_image_entry_is_refused_naming_it_and_its_written_files_deleted(
    image_project, nothing_stored
):
    archive = zip_of({"a.png": image(), "b.png": image(), "notes.txt": b"hello"})

    with pytest.raises(ImportRejected) as exc:
        import_image_zip(project=image_project, file=archive, filename="x.zip")

    assert str(exc.value).startswith("x.zip, entry 'notes.txt': not an image (JPEG, PNG")


def test_a_png_that_is_not_an_image_is_refused_by_name(image_project, nothing_stored):
    files = [("ok.png", file(image())), ("fake.png", file(b"\x89PNG\r\n\x1a\n but not really"))]

    with pytest.raises(ImportRejected, match=r"^file 'fake.png': "):
        import_images(project=image_project, files=files)


def test_truncated_image_is_refused_by_name(image_project, nothing_stored):
    data = image("JPEG", (64, 64))

    with pytest.raises(ImportRejected, match=r"^file 'cut.jpg': "):
        import_images(project=image_project, files=[("cut.jpg", file(data[: len(data) // 2]))])


def test_image_over_the_pixel_limit_is_refused_by_name(image_project, nothing_stored, settings):
    settings.LABELLOOP_MAX_IMAGE_PIXELS = 100
    files = [("small.png", file(image("PNG", (10, 10)))), ("big.png", file(image("PNG", (11, 10))))]

    with pytest.raises(ImportRejected) as exc:
        import_images(project=image_project, files=files)

    assert str(exc.value) == "file 'big.png': 11x10 is 110 pixels, over the limit of 100"


def test_decompression_bomb_is_refused_by_name(image_project, nothing_stored, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises above twice this

    with pytest.raises(ImportRejected, match=r"^x.zip, entry 'bomb.png': refused as a decompression bomb"):
        import_image_zip(
            project=image_project, file=zip_of({"bomb.png": image("PNG", (30, 30))}), filename="x.zip"
        )


def test_image_name_already_in_the_project_is_refused(image_project, settings):
    import_images(project=image_project, files=[("a.png", file(image()))])

    with pytest.raises(
        ImportRejected, match=r"^x.zip, entry 'a.png': an item with id 'a.png' already exists"
    ):
        import_image_zip(project=image_project, file=zip_of({"a.png": image()}), filename="x.zip")
    assert Item.objects.count() == 1
    assert len(media_files(settings)) == 1


def test_files_are_deleted_when_the_database_refuses_the_rows(image_project, settings, monkeypatch):
    # As when a concurrent import stores the same id between the check and the insert.
    import_images(project=image_project, files=[("a.png", file(image()))])
    monkeypatch.setattr(images, "ids_check", lambda **kwargs: None)

    with pytest.raises(ImportRejected, match="the database refused the items, nothing was stored"):
        import_images(project=image_project, files=[("b.png", file(image())), ("a.png", file(image()))])

    assert list(Item.objects.values_list("external_id", flat=True)) == ["a.png"]
    assert len(media_files(settings)) == 1


def test_zip_that_is_not_a_zip_is_refused(image_project, nothing_stored):
    with pytest.raises(ImportRejected, match=r"^x.zip: not a zip file$"):
        import_image_zip(project=image_project, file=file(b"PK but no"), filename="x.zip")

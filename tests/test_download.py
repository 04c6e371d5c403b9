"""Tests for effnb.data.download with a small local archive served through a file:// URL."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from effnb.data import download
from effnb.data.errors import DataError
from effnb.data.index import index_images


def _jfif_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(buf, "JPEG")
    assert b"JFIF" in buf.getvalue()[:10]
    return buf.getvalue()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A zip laid out like the real one: two good JPEGs, a non-JFIF .jpg, and entries to ignore."""
    zip_path = tmp_path / "served" / "kagglecatsanddogs_test.zip"
    zip_path.parent.mkdir()
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("PetImages/Cat/1.jpg", _jfif_jpeg())
        zf.writestr("PetImages/Dog/2.jpg", _jfif_jpeg())
        zf.writestr("PetImages/Dog/3.jpg", b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00 not JFIF")
        zf.writestr("PetImages/Cat/Thumbs.db", b"junk")
        zf.writestr("readme.txt", b"readme")
        zf.writestr("PetImages/Cat/../../evil.jpg", _jfif_jpeg())
    return zip_path


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_download_records_sha256_and_is_reused(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "dl"
    zip_path = download.download_archive(dest, url=archive.as_uri(), progress=False)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert zip_path.read_bytes() == archive.read_bytes()
    assert (dest / (archive.name + ".sha256")).read_text().split()[0] == digest
    assert _files(dest) == {archive.name, archive.name + ".sha256"}

    def no_network(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(download.urllib.request, "urlopen", no_network)
    assert download.download_archive(dest, url=archive.as_uri(), sha256=digest, progress=False) == zip_path


@pytest.mark.parametrize("via_env", [False, True])
def test_download_refuses_wrong_sha256(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via_env: bool
) -> None:
    wrong = "0" * 64
    if via_env:
        monkeypatch.setenv(download.SHA256_ENV, wrong)
    dest = tmp_path / "dl"
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=f"expected {wrong}, got {actual}"):
        download.download_archive(dest, url=archive.as_uri(), sha256=None if via_env else wrong, progress=False)
    assert _files(dest) == set()


def test_extract_pet_images(archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    root = download.extract_pet_images(archive, dest)
    assert root == dest.resolve() / "PetImages"
    assert _files(dest) == {"PetImages/Cat/1.jpg", "PetImages/Dog/2.jpg", f"PetImages/{download.EXTRACTED_MARKER}"}
    assert (root / "Cat/1.jpg").read_bytes() == _jfif_jpeg()
    assert "skipped_non_jfif 1" in (root / download.EXTRACTED_MARKER).read_text()
    assert not (tmp_path / "evil.jpg").exists()

    archive.unlink()  # a finished extraction is not redone, so the archive is no longer needed
    assert download.extract_pet_images(archive, dest) == root


def test_fetch_cats_vs_dogs_end_to_end(archive: Path, tmp_path: Path) -> None:
    root = download.fetch_cats_vs_dogs(tmp_path / "cache", url=archive.as_uri())
    index = index_images(root)
    assert index.classes == ["Cat", "Dog"] and len(index.paths) == 2
    assert download.fetch_cats_vs_dogs(tmp_path / "cache", url="file:///nonexistent.zip") == root

@pytest.fixture
def pet_tree(tmp_path: Path) -> Path:
    """An (empty) class-per-folder tree called PetImages, as the archive unpacks."""
    for cls in ("Cat", "Dog"):
        (tmp_path / "data" / "PetImages" / cls).mkdir(parents=True)
    return tmp_path / "data" / "PetImages"


# --------------------------------------------------------------------------- resolve_data_dir


def test_resolve_explicit_parent_and_env(pet_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert download.resolve_data_dir(pet_tree) == pet_tree
    assert download.resolve_data_dir(pet_tree.parent) == pet_tree
    monkeypatch.setenv(download.DATA_ENV, str(pet_tree.parent))
    assert download.resolve_data_dir(None) == pet_tree
    assert download.resolve_data_dir(pet_tree / "Cat") == pet_tree / "Cat"  # explicit argument wins over the env


def test_resolve_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        download.resolve_data_dir(tmp_path / "nowhere")


def test_resolve_finds_the_shared_folder_from_any_working_folder(
    pet_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(download.DATA_ENV, raising=False)
    monkeypatch.setattr(download, "SHARED_DATA_DIR", pet_tree)
    monkeypatch.chdir(tmp_path)  # a notebook's kernel runs in notebooks/, make in the repository root
    assert download.resolve_data_dir(None) == pet_tree


def test_resolve_downloads_when_nothing_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.DATA_ENV, raising=False)
    monkeypatch.setattr(download, "SHARED_DATA_DIR", tmp_path / "no-shared")
    calls = []
    monkeypatch.setattr(download, "fetch_cats_vs_dogs", lambda d: calls.append(d) or Path(d) / "PetImages")
    assert download.resolve_data_dir(None, tmp_path) == tmp_path / "PetImages"
    assert calls == [tmp_path]


def test_resolve_names_every_place_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(_):
        raise OSError("network unreachable")

    monkeypatch.delenv(download.DATA_ENV, raising=False)
    monkeypatch.setattr(download, "SHARED_DATA_DIR", tmp_path / "no-shared")
    monkeypatch.setattr(download, "fetch_cats_vs_dogs", offline)
    with pytest.raises(DataError) as err:
        download.resolve_data_dir(None, tmp_path / "downloads")
    message = str(err.value)
    assert download.DATA_ENV in message and str(tmp_path / "no-shared") in message
    assert str(tmp_path / "downloads") in message and "network unreachable" in message
    monkeypatch.setenv(download.DATA_ENV, str(tmp_path / "typo"))
    with pytest.raises(DataError, match=f"typo.*{download.DATA_ENV}"):
        download.resolve_data_dir(None)

"""Where the images come from: a folder given, ``$EFFNB_DATA_DIR``, the shared folder beside the repository, or the
real Microsoft cats-vs-dogs archive (the source of TFDS ``cats_vs_dogs``), downloaded and unpacked."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from effnb.data.cache import cache_home
from effnb.data.errors import DataError
from effnb.utils.atomic import (
    LOCK_FILE,
    ensure_dir,
    locked,
    remove_stale_temps,
    temp_path,
    write_text,
)
from effnb.utils.progress import tqdm

DATA_ENV = "EFFNB_DATA_DIR"
# the images shared beside the repository (resolved from this file, so the notebooks' working folder does not matter)
SHARED_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "PetImages"
ARCHIVE_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/"
    "kagglecatsanddogs_5340.zip"
)
SHA256_ENV = "EFFNB_ARCHIVE_SHA256"
ENTRY_PATTERN = re.compile(r"^PetImages/(Cat|Dog)/\d+\.jpg$")
EXTRACTED_MARKER = ".effnb_extracted"
_CHUNK = 1 << 20


def _read_recorded_sha(zip_path: Path) -> str | None:
    sha_path = zip_path.with_name(zip_path.name + ".sha256")
    if zip_path.is_file() and sha_path.is_file():
        return sha_path.read_text().split()[0]
    return None


def _fetch(url: str, part: Path, progress: bool) -> str:
    """Stream ``url`` into ``part``; return the sha256 of the bytes written."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=part.stem, disable=not progress) as bar:
            for block in iter(lambda: response.read(_CHUNK), b""):
                out.write(block)
                digest.update(block)
                bar.update(len(block))
    return digest.hexdigest()


def download_archive(
    dest_dir: str | os.PathLike,
    url: str = ARCHIVE_URL,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` into ``dest_dir`` (via a temporary file), record its sha256 beside it, return the zip path.

    The expected hash comes from ``sha256`` or ``$EFFNB_ARCHIVE_SHA256``; a mismatch deletes the download and
    raises :class:`DataError`. A zip whose recorded hash matches (or any recorded zip when no hash is expected)
    is reused.
    """
    expected = (sha256 or os.environ.get(SHA256_ENV) or "").lower() or None
    dest = ensure_dir(dest_dir, "download folder")
    zip_path = dest / Path(urllib.parse.urlparse(url).path).name
    recorded = _read_recorded_sha(zip_path)
    if recorded is not None and expected in (None, recorded):
        return zip_path

    remove_stale_temps(zip_path)
    part = temp_path(zip_path)
    try:
        actual = _fetch(url, part, progress)
        if expected is not None and actual != expected:
            raise DataError(f"sha256 mismatch for {url}: expected {expected}, got {actual}")
        os.replace(part, zip_path)
    finally:
        part.unlink(missing_ok=True)
    write_text(zip_path.with_name(zip_path.name + ".sha256"), f"{actual}  {zip_path.name}\n")
    return zip_path


def _is_jfif(head: bytes) -> bool:
    """TFDS keeps only files whose first 10 bytes contain ``JFIF``."""
    return b"JFIF" in head[:10]


def extract_pet_images(zip_path: str | os.PathLike, dest_dir: str | os.PathLike) -> Path:
    """Extract the JFIF ``PetImages/(Cat|Dog)/N.jpg`` entries of ``zip_path``; return ``dest_dir/PetImages``.

    Other entries are ignored and non-JFIF files are skipped (and counted), as TFDS does. A marker file records a
    finished extraction, so running it again is a no-op.
    """
    dest = Path(dest_dir).resolve()
    root = dest / "PetImages"
    marker = root / EXTRACTED_MARKER
    if marker.is_file():
        return root
    with zipfile.ZipFile(zip_path) as archive:
        entries = [info for info in archive.infolist() if ENTRY_PATTERN.match(info.filename)]
        if not entries:
            raise DataError(f"no PetImages/(Cat|Dog)/N.jpg entries in {zip_path}")
        kept = 0
        for info in tqdm(entries, desc="extract", unit="file"):
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(root):
                raise DataError(f"unsafe path in archive: {info.filename}")
            with archive.open(info) as src:
                head = src.read(10)
                if not _is_jfif(head):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    out.write(head)
                    shutil.copyfileobj(src, out)
            kept += 1
    skipped = len(entries) - kept
    write_text(marker, f"kept {kept}\nskipped_non_jfif {skipped}\n")
    print(f"extracted {kept} images to {root} (skipped {skipped} non-JFIF files)")
    return root


def fetch_cats_vs_dogs(
    cache_dir: str | os.PathLike, url: str = ARCHIVE_URL, sha256: str | None = None
) -> Path:
    """Download (if needed) and extract the archive into ``cache_dir``; return the ``PetImages`` root.

    A second run waits (under a lock on ``cache_dir``) for one that is downloading or extracting.
    """
    cache_dir = ensure_dir(Path(cache_dir).resolve(), "download folder")
    root = cache_dir / "PetImages"
    if (root / EXTRACTED_MARKER).is_file():
        return root
    with locked(cache_dir / LOCK_FILE, f"waiting for another run that is downloading into {cache_dir}"):
        if (root / EXTRACTED_MARKER).is_file():
            return root
        return extract_pet_images(download_archive(cache_dir, url=url, sha256=sha256), cache_dir)


def resolve_data_dir(
    data_dir: str | os.PathLike | None, download_dir: str | os.PathLike | None = None
) -> Path:
    """Return the class-folder root, the same way for the command line, ``make`` and the notebooks.

    In order: ``data_dir`` when given; else ``$EFFNB_DATA_DIR``; else the shared folder beside the repository
    (``../shared/data/PetImages`` from the repository root, whatever the working folder); else the real archive,
    downloaded into ``download_dir`` (default :func:`cache_home`). A folder holding ``PetImages/`` resolves to that
    subfolder. When nothing is found the error names every place tried.
    """
    explicit = data_dir or os.environ.get(DATA_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser().resolve()
        source = "" if data_dir else f" (from ${DATA_ENV})"
        if not path.exists():
            raise DataError(f"data folder not found: {path}{source}")
        if not path.is_dir():
            raise DataError(f"data folder {path}{source} is a file, not a folder")
        return path / "PetImages" if (path / "PetImages").is_dir() else path
    if SHARED_DATA_DIR.is_dir():
        return SHARED_DATA_DIR
    target = Path(download_dir or cache_home())
    try:
        return fetch_cats_vs_dogs(target)
    except (OSError, DataError) as exc:  # urllib's URLError is an OSError
        raise DataError(f"no images found: no data_dir given, ${DATA_ENV} not set, {SHARED_DATA_DIR} missing, "
                        f"and downloading into {target} failed ({exc})") from None

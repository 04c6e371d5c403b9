import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import make_image_folder, save_tiny_checkpoint  # noqa: E402

from effnb.data.cache import build_cache  # noqa: E402


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=40)


@pytest.fixture(scope="session")
def small_cache(image_folder, tmp_path_factory):
    return build_cache(image_folder, tmp_path_factory.mktemp("cache"), side=64, min_side=16)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")

import os
import sys
from pathlib import Path

# One torch thread per xdist worker (and per process it starts: kernels, torchrun ranks), unless the caller set
# OMP_NUM_THREADS: with torch's default of one thread per core in every worker, two workers on two cores
# oversubscribe the CPU. Measured on the 2-core AMD EPYC: the suite took 380 s with the default, 211 s with this.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

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


LONGEST_FIRST = ("test_study_smoke.py", "test_distributed.py", "test_concurrency.py", "test_engine.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (the smoke study alone takes about 40 % of the suite): under ``-n 2 --dist
    loadfile`` a worker starts the smoke study at once while the other works through the rest, instead of the
    study starting late and running alone at the end. The order within each file is kept."""
    items.sort(key=lambda item: LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
               else len(LONGEST_FIRST))

"""Images in, tensors out: the image index and decoded cache, duplicates, splits, the real archive, crops, FixRes
arithmetic."""
from effnb.data.cache import ImageCache, build_cache
from effnb.data.download import resolve_data_dir
from effnb.data.duplicates import PHASH_THRESHOLD, Duplicates, find_duplicates, spanning
from effnb.data.errors import DataError
from effnb.data.fixres import (
           expected_sigma,
           recommended_test_resolution,
           resolution_ratio,
           sigma_distribution,
)
from effnb.data.splits import make_splits, subset
from effnb.data.transforms import P_RANGE, TestSize, eval_batch, image_test_size, train_batch

__all__ = ["PHASH_THRESHOLD", "P_RANGE", "DataError", "Duplicates", "ImageCache", "TestSize", "build_cache",
           "eval_batch", "expected_sigma", "find_duplicates", "image_test_size", "make_splits",
           "recommended_test_resolution", "resolution_ratio", "resolve_data_dir", "sigma_distribution", "spanning",
           "subset", "train_batch"]

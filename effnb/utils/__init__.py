"""Plumbing every level uses: atomic writes and folder locks, progress bars, device choice, packed per-image results."""
from effnb.utils.atomic import (
           FolderBusy,
           StorageError,
           ensure_dir,
           json_safe,
           locked,
           write_json,
           write_text,
)
from effnb.utils.correct import pack_correct, unpack_correct
from effnb.utils.device import DeviceError, pick_device
from effnb.utils.progress import tqdm

__all__ = ["DeviceError", "FolderBusy", "StorageError", "ensure_dir", "json_safe", "locked", "pack_correct",
           "pick_device", "tqdm", "unpack_correct", "write_json", "write_text"]

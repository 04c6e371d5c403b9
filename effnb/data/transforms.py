"""The seed's training augmentation and evaluation preprocessing, batched on tensors.

Images come from the decoded-image cache: a uint8 canvas ``[B, 3, S, S]`` in
which image ``i`` occupies ``[:, :h, :w]`` (top-left, zeros elsewhere) and
``hw[i] = (h, w)``. All boxes are ``(x1, y1, x2, y2)`` pixel edges in canvas
coordinates (whole numbers stored as floats; pixel ``j`` covers ``[j, j + 1)``),
so ``(0, 0, w, h)`` is a whole image and a crop is ``image[:, y1:y2, x1:x2]``.

Training crop (the seed's "Augmentation" section):

1. Draw a proportion ``p ~ U(p_min, p_max)`` (default ``U(0.2, 0.7)``). It is the
   crop's *side* as a fraction of the image's *longer* side:
   ``side = p * max(h, w)``.
2. If that square does not fit (``side > min(h, w)``, the aspect ratio is too
   wide) the largest possible square is taken instead: ``side = min(h, w)``, and
   the proportion actually used is ``min(h, w) / max(h, w)``. Images are never
   padded. In short, ``side = min(p * max(h, w), min(h, w))`` rounded to whole
   pixels, and the proportion actually used is ``side / max(h, w)``.
3. The position is uniform over all whole-pixel positions where the square fits.
4. The square is resized to ``k_train x k_train`` (antialiased bilinear, as
   ``v2.Resize(antialias=True)``), then flipped horizontally with probability 0.5, multiplied by a
   brightness factor ``~ U(1 - b, 1 + b)``, blended with its grayscale image by a
   saturation factor ``~ U(1 - s, 1 + s)`` (both clamped to ``[0, 255]``), and
   normalised with the ImageNet mean and std.

So the mean proportion σ is 0.45 for square and 4:3 images (the largest
fitting proportion is 0.75 > 0.7) and ``E[min(p, 0.5)] = 0.41`` for 2:1 images.

Evaluation preprocessing (the seed's test transform): resize preserving the aspect ratio so the shorter
side is ``k_image_test``, centre-crop ``k_image_test x k_image_test``, then
centre-crop ``k_test x k_test``. By default ``k_image_test = image_test_size(k_test)
= round(k_test * 72 / 64)``. In canvas coordinates this is the central square of
side ``round(min(h, w) * k_test / k_image_test)``, placed like ``v2.CenterCrop``
places it, resized to ``k_test``.

All randomness is drawn with ``torch.rand`` from the given generator (on the
CPU), so results are deterministic given its state.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
P_RANGE = (0.2, 0.7)
TEST_CROP_RATIO = 64 / 72

_MEAN_255 = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
_STD_255 = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255


def image_test_size(k_test: int, crop_ratio: float = TEST_CROP_RATIO) -> int:
    """Shorter side the test image is resized to before the ``k_test`` centre crop.

    ``k_test / crop_ratio`` rounded half up (64 -> 72, 128 -> 144, 156 -> 176).
    """
    return math.floor(k_test / crop_ratio + 0.5 + 1e-9)


class TestSize(NamedTuple):
    """The evaluation preprocessing's two sides: resize the shorter side to ``k_image_test``, centre-crop ``k_test``."""

    __test__ = False  # not a pytest test class
    k_test: int
    k_image_test: int

    @classmethod
    def at(cls, k_test: int, k_image_test: int | None = None) -> TestSize:
        """``k_test`` with its image side, ``image_test_size(k_test)`` unless given: the one place it is derived."""
        return cls(int(k_test), int(k_image_test) if k_image_test else image_test_size(k_test))


def _as_hw(hw: Tensor) -> Tensor:
    return torch.as_tensor(hw).to(device="cpu", dtype=torch.float32).reshape(-1, 2)


def sample_crop_boxes(
    hw: Tensor,
    p_range: tuple[float, float] = P_RANGE,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw one random square training crop per image (see the module docstring).

    Args:
        hw: ``[B, 2]`` image sizes ``(h, w)``.
        p_range: range of the uniform crop proportion (side / longer side).
        generator: CPU generator for reproducible draws.

    Returns:
        ``boxes`` float ``[B, 4]`` ``(x1, y1, x2, y2)`` in canvas pixels and the
        proportions actually used, float ``[B]``.
    """
    hw = _as_hw(hw)
    h, w = hw.unbind(1)
    longer, shorter = torch.maximum(h, w), torch.minimum(h, w)
    u = torch.rand(len(hw), 3, generator=generator)
    p = p_range[0] + (p_range[1] - p_range[0]) * u[:, 0]
    side = torch.minimum(p * longer, shorter).round().clamp_(min=1)
    x1 = (u[:, 1] * (w - side + 1)).floor()
    y1 = (u[:, 2] * (h - side + 1)).floor()
    boxes = torch.stack([x1, y1, x1 + side, y1 + side], dim=1)
    return boxes, side / longer


def eval_boxes(hw: Tensor, k_test: int, k_image_test: int | None = None) -> Tensor:
    """Central squares of side ``min(h, w) * k_test / k_image_test``: the evaluation crop.

    Sides and offsets are rounded to whole pixels as ``v2.CenterCrop`` rounds them.
    Returns float ``[B, 4]`` ``(x1, y1, x2, y2)`` boxes in canvas pixels.
    """
    k_test, k_image_test = TestSize.at(k_test, k_image_test)
    hw = _as_hw(hw)
    h, w = hw.unbind(1)
    side = (torch.minimum(h, w) * (k_test / k_image_test)).round().clamp_(min=1)
    x1, y1 = ((w - side) / 2).round(), ((h - side) / 2).round()
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def crop_resize(images_u8: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop each image's box and resize it to ``size x size`` (antialiased bilinear).

    Boxes are rounded to whole pixels. Each crop is resized with
    ``F.interpolate(mode="bilinear", antialias=True)``, the kernel of
    ``v2.Resize(antialias=True)``, on uint8 channels_last data on the CPU (about 6x
    faster than a batched ``torchvision.ops.roi_align``, which is single-threaded there).

    Args:
        images_u8: ``[B, 3, H, W]`` uint8 canvas.
        boxes: ``[B, 4]`` ``(x1, y1, x2, y2)`` boxes, one per image, in canvas pixels.
        size: output side.

    Returns:
        float ``[B, 3, size, size]`` in 0..255, channels_last.
    """
    if images_u8.device.type != "cpu":  # images held on an accelerator: one batched kernel there
        return roi_crop_resize(images_u8, boxes, size)
    crops = []
    for image, (x1, y1, x2, y2) in zip(images_u8, boxes.round().long().tolist()):
        crop = image[None, :, y1:y2, x1:x2].contiguous(memory_format=torch.channels_last)
        crops.append(F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True))
    return torch.cat(crops).float().contiguous(memory_format=torch.channels_last)


def roi_crop_resize(images_u8: Tensor, boxes: Tensor, size: int) -> Tensor:
    """:func:`crop_resize` as one batched ``torchvision.ops.roi_align`` on the images' own device (the GPU-resident
    pipeline's crop; it also runs on the CPU, for the tests).

    Boxes are rounded to whole pixels as there; ``sampling_ratio=-1`` averages about one sample per source pixel
    under each output pixel, close to the antialiased resize, and ``aligned=True`` puts pixel centres at +0.5.
    Returns float ``[B, 3, size, size]`` in 0..255, channels_last.
    """
    index = torch.arange(len(boxes), dtype=torch.float32)[:, None]
    rois = torch.cat([index, torch.as_tensor(boxes, dtype=torch.float32).round()], dim=1)
    rois = rois.to(images_u8.device, non_blocking=True)
    out = roi_align(images_u8.float(), rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.contiguous(memory_format=torch.channels_last)


def normalize(x_0_255: Tensor) -> Tensor:
    """Map a ``[B, 3, H, W]`` float batch in 0..255 to ImageNet-normalised values."""
    device = x_0_255.device  # non_blocking: a small host-to-device copy that does not wait for the device
    return (x_0_255 - _MEAN_255.to(device, non_blocking=True)) / _STD_255.to(device, non_blocking=True)


def denormalize(x: Tensor) -> Tensor:
    """Inverse of :func:`normalize`, returned in 0..1 (clamped) for display."""
    return (x * _STD_255.to(x.device) + _MEAN_255.to(x.device)).div(255).clamp(0, 1)


def train_batch(
    images_u8: Tensor,
    hw: Tensor,
    size: int,
    generator: torch.Generator | None = None,
    p_range: tuple[float, float] = P_RANGE,
    brightness: float = 0.2,
    saturation: float = 0.2,
    flip: bool = True,
) -> tuple[Tensor, Tensor]:
    """Apply the seed's training augmentation to a canvas batch.

    Returns the normalised float batch ``[B, 3, size, size]`` (channels_last) and
    the crop proportions actually used ``[B]``.
    """
    boxes, proportions = sample_crop_boxes(hw, p_range, generator)
    x = crop_resize(images_u8, boxes, size)
    u = torch.rand(len(x), 3, generator=generator).to(x.device, non_blocking=True)[:, :, None, None, None]
    if flip:
        x = torch.where(u[:, 0] < 0.5, x.flip(-1), x)
    if brightness:
        x.mul_(1 - brightness + 2 * brightness * u[:, 1]).clamp_(0, 255)
    if saturation:  # x <- gray + factor * (x - gray)
        x.lerp_(TF.rgb_to_grayscale(x), saturation - 2 * saturation * u[:, 2]).clamp_(0, 255)
    return normalize(x).contiguous(memory_format=torch.channels_last), proportions


def eval_batch(images_u8: Tensor, hw: Tensor, k_test: int, k_image_test: int | None = None) -> Tensor:
    """Apply the evaluation preprocessing to a canvas batch: normalised ``[B, 3, k_test, k_test]``."""
    x = crop_resize(images_u8, eval_boxes(hw, k_test, k_image_test), k_test)
    return normalize(x).contiguous(memory_format=torch.channels_last)

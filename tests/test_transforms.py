import pytest
import torch
from torchvision.transforms import v2

from effnb.data import transforms as T


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _canvas(hws: list[tuple[int, int]], size: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images placed top-left on a zero canvas, as the data cache stores them."""
    g = _gen(seed)
    images = torch.zeros(len(hws), 3, size, size, dtype=torch.uint8)
    for i, (h, w) in enumerate(hws):
        images[i, :, :h, :w] = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
    return images, torch.tensor(hws)


def test_image_test_size() -> None:
    assert T.image_test_size(64) == 72
    assert T.image_test_size(128) == 144
    assert T.image_test_size(79) == 89
    assert T.image_test_size(156) == 176  # 175.5 rounds half up


def test_test_size_derives_the_image_side_once() -> None:
    assert T.TestSize.at(64) == (64, 72) and T.TestSize.at(156).k_image_test == 176
    assert T.TestSize.at(128, 150) == T.TestSize(128, 150)  # a given image side is kept
    assert T.TestSize.at(64)._asdict() == {"k_test": 64, "k_image_test": 72}  # the checkpoint's keys


def test_crop_boxes_square_inside_and_in_range() -> None:
    hw = torch.tensor([[200, 200], [150, 180], [180, 150], [37, 41]]).repeat(500, 1)
    boxes, props = T.sample_crop_boxes(hw, generator=_gen())
    h, w = hw[:, 0].float(), hw[:, 1].float()
    assert boxes.shape == (len(hw), 4) and props.shape == (len(hw),)
    assert torch.equal(boxes, boxes.round())  # whole pixels
    side_x, side_y = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert torch.equal(side_x, side_y)
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    longer = torch.maximum(h, w)
    torch.testing.assert_close(props, side_x / longer)
    half_pixel = 0.5 / longer  # sides are rounded to whole pixels
    assert (props >= 0.2 - half_pixel).all() and (props <= 0.7 + half_pixel).all()
    square = props[(h == 200) & (w == 200)]
    assert square.min() >= 0.2 and square.max() <= 0.7


def test_crop_positions_cover_valid_range() -> None:
    hw = torch.tensor([[200, 200]]).repeat(4000, 1)
    boxes, _ = T.sample_crop_boxes(hw, generator=_gen())
    assert boxes[:, 0].min() < 2 and boxes[:, 2].max() > 198
    assert boxes[:, 1].min() < 2 and boxes[:, 3].max() > 198


@pytest.mark.parametrize("hw", [(100, 300), (300, 100)])
def test_largest_square_when_too_wide(hw: tuple[int, int]) -> None:
    boxes, props = T.sample_crop_boxes(torch.tensor([hw]).repeat(5000, 1), generator=_gen())
    side = boxes[:, 2] - boxes[:, 0]
    assert side.max() <= 100 + 1e-4
    assert props.max() <= 1 / 3 + 1e-6
    # p >= 1/3 happens with probability (0.7 - 1/3) / 0.5 ~ 73 %: all those are the full 100 px square
    full = torch.isclose(side, torch.tensor(100.0))
    assert 0.68 < full.float().mean() < 0.78
    assert torch.isclose(props[full], torch.tensor(1 / 3)).all()


def test_crop_boxes_deterministic() -> None:
    hw = torch.tensor([[120, 200], [200, 90]])
    a = T.sample_crop_boxes(hw, generator=_gen(3))
    b = T.sample_crop_boxes(hw, generator=_gen(3))
    c = T.sample_crop_boxes(hw, generator=_gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_eval_boxes_geometry() -> None:
    boxes = T.eval_boxes(torch.tensor([[200, 200], [100, 300], [300, 100]]), 64)
    # sides 200 * 64 / 72 = 177.8 -> 178 and 100 * 64 / 72 = 88.9 -> 89, centred as v2.CenterCrop does
    assert boxes.tolist() == [[11, 11, 189, 189], [106, 6, 195, 95], [6, 106, 95, 195]]
    assert T.eval_boxes(torch.tensor([[90, 90]]), 64, 64).tolist() == [[0, 0, 90, 90]]


def test_crop_resize_constant_region() -> None:
    images = torch.zeros(2, 3, 200, 200, dtype=torch.uint8)
    images[0, :, 40:120, 50:150] = torch.tensor([10, 120, 250], dtype=torch.uint8)[:, None, None]
    images[1, :, :100, :100] = 77  # a whole image in the top-left corner: no zero padding may leak in
    boxes = torch.tensor([[50.0, 40, 130, 120], [0, 0, 100, 100]])
    for size in (32, 64, 128):
        out = T.crop_resize(images, boxes, size)
        assert out.shape == (2, 3, size, size) and out.dtype == torch.float32
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out[0], torch.tensor([10.0, 120, 250])[:, None, None].expand(3, size, size))
        torch.testing.assert_close(out[1], torch.full((3, size, size), 77.0))


def test_crop_resize_takes_the_box() -> None:
    images = torch.zeros(1, 3, 200, 200, dtype=torch.uint8)
    images[0, :, 30:94, 20:84] = torch.randint(0, 256, (3, 64, 64), generator=_gen(), dtype=torch.uint8)
    out = T.crop_resize(images, torch.tensor([[20.0, 30, 84, 94]]), 64)
    torch.testing.assert_close(out, images[:, :, 30:94, 20:84].float(), check_stride=False)


def test_train_batch_shapes_and_determinism() -> None:
    images, hw = _canvas([(200, 200), (150, 200), (200, 120), (90, 180)])
    x, props = T.train_batch(images, hw, 64, generator=_gen(1))
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert props.shape == (4,)
    y, props_y = T.train_batch(images, hw, 64, generator=_gen(1))
    assert torch.equal(x, y) and torch.equal(props, props_y)
    assert not torch.equal(x, T.train_batch(images, hw, 64, generator=_gen(2))[0])


def test_train_batch_flip() -> None:
    images = torch.zeros(1, 3, 100, 100, dtype=torch.uint8)
    images[0, :, :, :50] = 255  # left half white, right half black
    hw = torch.tensor([[100, 100]])
    kwargs = {"p_range": (1.0, 1.0), "brightness": 0.0, "saturation": 0.0}
    outs = [T.train_batch(images, hw, 32, generator=_gen(s), **kwargs)[0] for s in range(20)]
    flipped = [bool(o[0, 0, 0, -1] > o[0, 0, 0, 0]) for o in outs]
    assert any(flipped) and not all(flipped)
    for o, f in zip(outs, flipped):
        expected = T.normalize(T.crop_resize(images, torch.tensor([[0.0, 0, 100, 100]]), 32))
        torch.testing.assert_close(o, expected.flip(-1) if f else expected)
    no_flip = T.train_batch(images, hw, 32, generator=_gen(0), flip=False, **kwargs)[0]
    assert no_flip[0, 0, 0, 0] > no_flip[0, 0, 0, -1]


def test_train_batch_brightness_and_saturation() -> None:
    images = torch.full((64, 3, 50, 50), 128, dtype=torch.uint8)
    images[:, 0] = 200
    hw = torch.tensor([[50, 50]]).repeat(64, 1)
    base = {"p_range": (0.5, 0.5), "flip": False}
    plain = T.denormalize(T.train_batch(images, hw, 16, _gen(), brightness=0, saturation=0, **base)[0]) * 255
    bright = T.denormalize(T.train_batch(images, hw, 16, _gen(), brightness=0.5, saturation=0, **base)[0]) * 255
    sat = T.denormalize(T.train_batch(images, hw, 16, _gen(), brightness=0, saturation=0.5, **base)[0]) * 255
    means = bright.mean(dim=(1, 2, 3)) / plain.mean(dim=(1, 2, 3))
    assert 0.5 <= means.min() < 0.8 and 1.2 < means.max() <= 1.5
    # saturation keeps the grayscale value and scales the distance to it
    gray = torch.tensor([0.299, 0.587, 0.114]) @ torch.tensor([200.0, 128, 128])
    spread = (sat[:, 0, 0, 0] - gray) / (200 - gray)
    assert 0.5 <= spread.min() < 0.8 and 1.2 < spread.max() <= 1.5


def test_train_batch_ignores_the_canvas_around_an_image() -> None:
    """An image gives the same crop whatever canvas it sits on, given the same generator state (the cache
    and the batch feeder may use other canvas sizes); the proportion used is that of the crop box."""
    images, hw = _canvas([(150, 180)])
    x, p = T.train_batch(images, hw, 48, generator=_gen(5))
    img = images[0, :, :150, :180]
    alone = torch.zeros(1, 3, 256, 256, dtype=torch.uint8)
    alone[0, :, :150, :180] = img
    y, q = T.train_batch(alone, hw[:1], 48, generator=_gen(5))
    torch.testing.assert_close(y[0], x[0])
    assert float(q[0]) == pytest.approx(float(p[0]))
    boxes, props = T.sample_crop_boxes(hw[:1], generator=_gen(5))
    assert float(props[0]) == pytest.approx(float(q[0]))
    assert float(boxes[0, 2] - boxes[0, 0]) == pytest.approx(float(q[0]) * 180)


def _reference_eval(img: torch.Tensor, k_test: int, k_image_test: int | None = None) -> torch.Tensor:
    """The seed's evaluation transform for one image, with torchvision.transforms.v2."""
    k_image_test = k_image_test or T.image_test_size(k_test)
    transform = v2.Compose([
        v2.Resize(k_image_test, antialias=True), v2.CenterCrop(k_image_test), v2.CenterCrop(k_test),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(T.IMAGENET_MEAN, T.IMAGENET_STD)])
    return transform(img)


@pytest.mark.parametrize("hw", [(200, 200), (150, 200), (200, 130)])
def test_eval_batch_matches_the_torchvision_eval_transform(hw: tuple[int, int]) -> None:
    h, w = hw
    # a smooth image, so the two interpolation schemes should agree closely
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([255 * yy, 255 * xx, 127 + 120 * torch.sin(6 * xx) * torch.cos(4 * yy)]).round().to(torch.uint8)
    images = torch.zeros(1, 3, 200, 200, dtype=torch.uint8)
    images[0, :, :h, :w] = img
    batch = T.eval_batch(images, torch.tensor([hw]), 64)
    single = _reference_eval(img, 64)
    assert batch.shape == (1, 3, 64, 64) and single.shape == (3, 64, 64)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert (batch[0] - single).abs().mean() < 0.05
    assert (T.eval_batch(images, torch.tensor([hw]), 128, 144)[0] - _reference_eval(img, 128, 144)).abs().mean() < 0.05


def test_normalize_roundtrip() -> None:
    x = torch.rand(2, 3, 8, 8) * 255
    torch.testing.assert_close(T.denormalize(T.normalize(x)) * 255, x, atol=1e-3, rtol=1e-5)
    mean = torch.tensor(T.IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    torch.testing.assert_close(T.normalize(mean.expand(1, 3, 4, 4)), torch.zeros(1, 3, 4, 4))

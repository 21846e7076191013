"""Image decoding for the predictor and the exporters: every file is read as a person sees it, or refused.

Each case is a file whose plain ``Image.open(path).convert('RGB')`` (timm's and torchvision's loader) gives a
silently different picture: 16-bit grey clipped to white, transparent pixels showing the colour they hide, a
phone photo on its side; and files refused before an absurd resize.
"""
import io

import numpy as np
import pytest
from PIL import Image

from rexnet_gluon.deploy import images
from rexnet_gluon.deploy.images import BACKGROUND, ImageLoadError, load_image, open_rgb

PP = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), resize=32, crop=32, interpolation='bilinear')


def _save(tmp_path, img, name, **kwargs):
    path = str(tmp_path / name)
    img.save(path, **kwargs)
    return path


@pytest.mark.parametrize('fmt', ['png', 'tiff'])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, fmt):
    levels = np.array([[0, 257 * 64, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = _save(tmp_path, Image.fromarray(levels), 'grey16.' + fmt)
    with Image.open(path) as raw:
        assert raw.mode.startswith('I')
        assert raw.convert('RGB').getpixel((2, 0)) == (255, 255, 255)     # what a plain convert('RGB') gives
    got = np.asarray(open_rgb(path))
    assert got.shape == (4, 4, 3)
    assert got[0, :, 0].tolist() == [0, 64, 128, 255] and (got == got[:, :, :1]).all()


def test_16_bit_grey_predicts_like_its_8_bit_copy(tmp_path):
    rng = np.random.default_rng(0)
    eight = (rng.random((40, 40)) * 255).astype(np.uint8)
    p8 = _save(tmp_path, Image.fromarray(eight), 'g8.png')
    p16 = _save(tmp_path, Image.fromarray(eight.astype(np.uint16) * 257), 'g16.png')
    np.testing.assert_array_equal(load_image(p16, PP, as_numpy=True), load_image(p8, PP, as_numpy=True))


def test_32_bit_integer_mode_in_16_bit_range(tmp_path):
    img = Image.fromarray(np.full((4, 4), 32768, dtype=np.int32), 'I')
    path = _save(tmp_path, img, 'grey32.tiff')
    assert np.asarray(open_rgb(path))[0, 0].tolist() == [128, 128, 128]


def test_transparency_is_composited_on_the_documented_background(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)      # black under alpha
    rgba[:, :2, 3] = 0                              # left half fully transparent
    rgba[:, 2:, :] = (200, 10, 10, 255)             # right half opaque red
    rgba[0, 0] = (0, 0, 0, 128)                     # half-transparent black
    got = np.asarray(open_rgb(_save(tmp_path, Image.fromarray(rgba, 'RGBA'), 'a.png')))
    assert tuple(got[1, 0]) == BACKGROUND == (255, 255, 255)
    assert tuple(got[1, 3]) == (200, 10, 10)
    assert abs(int(got[0, 0, 0]) - 127) <= 1      # 50 % black over white
    pal = Image.new('P', (4, 4), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    path = _save(tmp_path, pal, 'p.png', transparency=0)   # palette index 0 (black) is transparent
    got = np.asarray(open_rgb(path))
    assert tuple(got[0, 0]) == BACKGROUND and tuple(got[1, 1]) == (0, 255, 0)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), dtype=np.uint8)    # 20 wide, 10 high as stored; a white mark at the top left
    arr[:3, :3] = 255
    exif = Image.Exif()
    exif[0x0112] = 6                                # "rotate 90 CW to display"
    path = _save(tmp_path, Image.fromarray(arr), 'phone.jpg', exif=exif, quality=100)
    got = np.asarray(open_rgb(path))
    assert got.shape == (20, 10, 3)                 # upright: 10 wide, 20 high
    assert got[:3, -3:].mean() > 200 and got[:3, :3].mean() < 50   # the mark is now at the top right


def test_absurd_shapes_and_float_images_are_refused(tmp_path, monkeypatch):
    strip = _save(tmp_path, Image.new('RGB', (3000, 2)), 'strip.png')
    with pytest.raises(ImageLoadError, match='aspect ratio over 100:1'):
        load_image(strip, PP)
    monkeypatch.setattr(images, 'MAX_PIXELS', 100)
    with pytest.raises(ImageLoadError, match='11 x 11 pixels'):
        open_rgb(_save(tmp_path, Image.new('RGB', (11, 11)), 'big.png'))
    monkeypatch.undo()
    flt = _save(tmp_path, Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), 'F'), 'f.tiff')
    with pytest.raises(ImageLoadError, match='floating-point'):
        open_rgb(flt)


def test_plain_8_bit_rgb_is_unchanged(tmp_path):
    rng = np.random.default_rng(1)
    arr = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    path = _save(tmp_path, Image.fromarray(arr), 'rgb.png')
    np.testing.assert_array_equal(np.asarray(open_rgb(path)), arr)
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0]).save(buf, format='PNG')
    (tmp_path / 'l.png').write_bytes(buf.getvalue())
    np.testing.assert_array_equal(np.asarray(open_rgb(str(tmp_path / 'l.png'))), arr[:, :, [0, 0, 0]])

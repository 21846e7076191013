"""Image files as model input: the evaluation preprocessing of the predictor and of the exporters' image folders.

Preprocessing is the evaluation transform the weights were published with (timm / torchvision): RGB, resize
the shorter side to ``preprocess['resize']`` with the model's interpolation, center-crop
``preprocess['crop']``, scale to [0, 1], normalise with the ImageNet mean/std. Pillow does the resizing,
as in those pipelines.

Decoding is stricter than ``Image.open(path).convert('RGB')``, which those pipelines use and which is silently
wrong on some files: the EXIF orientation is applied (a phone photo is classified upright, as it is shown);
16-bit and 32-bit integer images are scaled to 8 bits (Pillow's ``convert`` clips them: mid-grey 32768 became
white); transparent pixels are composited on white (:data:`BACKGROUND`) instead of showing whatever colour they
hide; floating-point images, more than :data:`MAX_PIXELS` pixels and aspect ratios beyond :data:`MAX_ASPECT` are
refused with an error before anything is resized.
"""
import os

import numpy as np

__all__ = ['ImageLoadError', 'load_image', 'load_images', 'preprocess_image', 'open_rgb', 'as_rgb', 'image_files',
           'IMAGE_EXTENSIONS', 'BACKGROUND', 'MAX_ASPECT', 'MAX_PIXELS']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp', '.tif', '.tiff', '.ppm')

BACKGROUND = (255, 255, 255)   # under transparent pixels (PNG/WebP alpha, palette transparency)
MAX_ASPECT = 100               # longer side / shorter side; a 1 x 300000 strip would resize to ~20 G pixels
MAX_PIXELS = 89478485          # Pillow's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
_HIGH_BIT_MODES = {'I;16': 16, 'I;16L': 16, 'I;16B': 16, 'I;16N': 16, 'I': 32}

_INTERPOLATION = {'bicubic': 'BICUBIC', 'bilinear': 'BILINEAR', 'nearest': 'NEAREST', 'lanczos': 'LANCZOS',
                  'box': 'BOX', 'hamming': 'HAMMING'}


class ImageLoadError(ValueError):
    """An image file that is missing or that Pillow cannot decode; the message names the file."""


def _resample(name):
    from PIL import Image
    key = str(name).lower()
    if key not in _INTERPOLATION:
        raise ValueError('unknown interpolation %r; use one of %s' % (name, ', '.join(_INTERPOLATION)))
    resampling = getattr(Image, 'Resampling', Image)   # Pillow >= 9.1 moved the constants
    return getattr(resampling, _INTERPOLATION[key])


def _check_size(path, size):
    w, h = size
    if w < 1 or h < 1 or w * h > MAX_PIXELS:
        raise ImageLoadError('%s: %d x %d pixels is outside what this loader accepts (1 to %d pixels); resize the '
                             'image first' % (path, w, h, MAX_PIXELS))
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise ImageLoadError('%s: %d x %d has an aspect ratio over %d:1, not a photo a classifier can use (its '
                             'shorter side would be resized to the model\'s input size); crop it first'
                             % (path, w, h, MAX_ASPECT))


def _to_8bit(img, path):
    """High-bit-depth grayscale (16-bit PNG/TIFF, 32-bit integer) scaled to 8 bits: 65535 -> 255, 32768 -> 128."""
    from PIL import Image
    if img.mode == 'F':
        raise ImageLoadError('%s: a floating-point image (mode F) has no agreed 0-255 scale; save it as an 8- or '
                             '16-bit image' % path)
    bits = _HIGH_BIT_MODES.get(img.mode)
    if bits is None:
        return img
    a = np.asarray(img).astype(np.float64)
    if bits == 32 and a.min() >= 0 and a.max() <= 65535:
        bits = 16                  # Pillow opens some 16-bit files as 32-bit integer mode 'I'
    if a.min() < 0:
        raise ImageLoadError('%s: a signed integer image (mode %s with negative values) has no agreed 0-255 scale'
                             % (path, img.mode))
    return Image.fromarray(np.clip(np.round(a * 255.0 / (2 ** bits - 1)), 0, 255).astype(np.uint8), 'L')


def _flatten(img):
    """Any mode -> RGB; transparency composited on BACKGROUND."""
    from PIL import Image
    if img.mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    if img.mode in ('RGBA', 'LA', 'PA', 'La', 'RGBa') or 'transparency' in img.info:
        rgba = img.convert('RGBA')
        out = Image.new('RGB', rgba.size, BACKGROUND)
        out.paste(rgba, mask=rgba.getchannel('A'))
        return out
    return img.convert('RGB')


def as_rgb(img, name='image'):
    """An open, decoded PIL image as an upright 8-bit RGB image (the rules of the module docstring);
    :class:`ImageLoadError` naming ``name``."""
    from PIL import ImageOps
    _check_size(name, img.size)
    img = ImageOps.exif_transpose(img)
    _check_size(name, img.size)
    return _flatten(_to_8bit(img, name))


def open_rgb(path):
    """Decode ``path`` as an upright 8-bit RGB image (see the module docstring); ImageLoadError naming the file."""
    from PIL import Image, ImageFile, UnidentifiedImageError
    if not os.path.exists(path):
        raise ImageLoadError('%s: no such file' % path)
    if os.path.isdir(path):
        raise ImageLoadError('%s: is a directory, not an image file' % path)
    # GluonCV's import sets ImageFile.LOAD_TRUNCATED_IMAGES = True process-wide, which would silently
    # pad a truncated file with grey; we want the error.
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with Image.open(path) as img:
            _check_size(path, img.size)    # from the header: before anything big is decoded or resized
            img.load()   # decode now, so truncated files fail here and not later
            return as_rgb(img, path)
    except UnidentifiedImageError:
        raise ImageLoadError('%s: not an image file Pillow can read (JPEG, PNG, BMP, WebP, ...)' % path) from None
    except Image.DecompressionBombError as err:
        raise ImageLoadError('%s: %s' % (path, err)) from None
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError('%s: cannot decode the image (%s)' % (path, err)) from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def _resize_and_crop(img, preprocess):
    """Shorter side -> ``resize`` (torchvision's rule: the longer side is truncated), then center crop."""
    resize, crop = int(preprocess['resize']), preprocess['crop']
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else tuple(crop)
    w, h = img.size
    if w <= h:
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), _resample(preprocess.get('interpolation', 'bicubic')))
    if crop_w > new_w or crop_h > new_h:
        raise ValueError('crop %dx%d is larger than the resized image %dx%d (resize=%d)'
                         % (crop_w, crop_h, new_w, new_h, resize))
    top = int(round((new_h - crop_h) / 2.0))
    left = int(round((new_w - crop_w) / 2.0))
    return img.crop((left, top, left + crop_w, top + crop_h))


def _normalise(img, preprocess):
    x = np.asarray(img, dtype=np.float32) / 255.0                       # H, W, 3 in [0, 1]
    mean = np.asarray(preprocess['mean'], dtype=np.float32)
    std = np.asarray(preprocess['std'], dtype=np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])             # 1, 3, H, W


def load_image(path, preprocess, as_numpy=False):
    """Read ``path`` and apply the model's evaluation preprocessing.

    Returns a float32 ``mx.nd.NDArray`` of shape (1, 3, crop, crop) (a numpy array with ``as_numpy``).
    Raises :class:`ImageLoadError` (a ValueError) naming the file if it is missing or not an image.
    """
    x = preprocess_image(open_rgb(path), preprocess)
    if as_numpy:
        return x
    import mxnet as mx
    return mx.nd.array(x, dtype='float32')


def preprocess_image(img, preprocess, name='image'):
    """An open PIL image through the same steps as :func:`load_image` (upright 8-bit RGB, resize, crop,
    normalise): a float32 numpy array (1, 3, crop, crop)."""
    return _normalise(_resize_and_crop(as_rgb(img, name), preprocess), preprocess)


def image_files(folder):
    """The image files (:data:`IMAGE_EXTENSIONS`, any case) under ``folder``, recursively, sorted."""
    return sorted(os.path.join(root, f) for root, _, files in os.walk(folder) for f in files
                  if f.lower().endswith(IMAGE_EXTENSIONS))


def load_images(paths, preprocess):
    """Several files as one (N, 3, H, W) float32 numpy batch."""
    return np.concatenate([load_image(p, preprocess, as_numpy=True) for p in paths], axis=0)

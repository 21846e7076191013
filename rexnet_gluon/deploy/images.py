"""Image files as model input: the evaluation preprocessing of the predictor and of the exporters' image folders.

Preprocessing is the evaluation transform the weights were published with (timm / torchvision): RGB, resize
the shorter side to ``preprocess['resize']`` with the model's interpolation, center-crop
``preprocess['crop']``, scale to [0, 1], normalise with the ImageNet mean/std. Pillow does the resizing,
as in those pipelines.
"""
import os

import numpy as np

__all__ = ['ImageLoadError', 'load_image', 'load_images', ]

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


def _open_rgb(path):
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
            img.load()   # decode now, so truncated files fail here and not later
            return img.convert('RGB')
    except UnidentifiedImageError:
        raise ImageLoadError('%s: not an image file Pillow can read (JPEG, PNG, BMP, WebP, ...)' % path) from None
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
    x = _normalise(_resize_and_crop(_open_rgb(path), preprocess), preprocess)
    if as_numpy:
        return x
    import mxnet as mx
    return mx.nd.array(x, dtype='float32')


def load_images(paths, preprocess):
    """Several files as one (N, 3, H, W) float32 numpy batch."""
    return np.concatenate([load_image(p, preprocess, as_numpy=True) for p in paths], axis=0)

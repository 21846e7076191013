"""The images of an export's checks: generated (calibration and held-out sets), read from a folder, and the
agreement measures (top-1, logit cosine) between two sets of logits."""
import os

import numpy as np

from ..errors import UsageError
from ..images import IMAGE_EXTENSIONS, image_files, load_images
from .staging import ExportError

__all__ = ['CALIB_SEED', 'EVAL_SEED', 'IMAGE_EXTENSIONS', 'generated_images', 'preprocess_for_size',
           'calibration_images', 'held_out', 'top1_agreement', 'mean_cosine', ]

CALIB_SEED = 0        # generated calibration images
EVAL_SEED = 1         # held-out generated images (never used for calibration)


def _upsample(low, size):
    import mxnet as mx
    return mx.nd.contrib.BilinearResize2D(mx.nd.array(low, dtype='float32'), height=size, width=size).asnumpy()


def _normalise_batch(x, preprocess):
    mean = np.asarray(preprocess['mean'], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(preprocess['std'], np.float32).reshape(1, 3, 1, 1)
    return ((x - mean) / std).astype(np.float32)


def generated_images(n, size, preprocess, seed):
    """``n`` smooth random RGB images, (n, 3, size, size), normalised like decoded photos.

    Each image sums bilinearly upsampled uniform noise at 2, 4, 8 and 16 cells per side (a rough 1/f
    spectrum), with random brightness and contrast, clipped to [0, 1] and rounded to 8 bits like a decoded
    file, then normalised with the model's mean/std. Seeded: the same seed gives the same images.
    """
    rs = np.random.RandomState(seed)
    img = np.zeros((n, 3, size, size), np.float32)
    for cells, weight in ((2, 0.5), (4, 0.3), (8, 0.2), (16, 0.12)):
        img += weight * (_upsample(rs.rand(n, 3, cells, cells), size) - 0.5)
    brightness = rs.uniform(0.3, 0.7, (n, 1, 1, 1))
    contrast = rs.uniform(0.6, 1.8, (n, 1, 1, 1))
    img = np.round(np.clip(brightness + contrast * img, 0, 1) * 255) / 255
    return _normalise_batch(img.astype(np.float32), preprocess)


def preprocess_for_size(preprocess, size):
    """The model's preprocessing with the crop changed to ``size`` (resize keeps the model's crop_pct)."""
    pp = dict(preprocess)
    if size != pp['crop']:
        pp['crop'] = pp['input_size'] = size
        pp['resize'] = int(round(size / pp.get('crop_pct', 1.0)))
    return pp


def calibration_images(folder, preprocess, limit, flag='--calib-dir'):
    """Up to ``limit`` images of ``folder`` (recursive; evenly spaced in sorted order if there are more),
    preprocessed like :func:`rexnet_gluon.deploy.images.load_image`."""
    if not os.path.isdir(folder):
        raise UsageError('%s %s: no such folder' % (flag, folder))
    paths = image_files(folder)
    if not paths:
        raise UsageError('%s %s holds no image files (%s)' % (flag, folder, ', '.join(IMAGE_EXTENSIONS)))
    if len(paths) > limit:   # evenly spaced, so a class-per-folder tree is sampled across its classes
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    return load_images(paths, preprocess)


def held_out(eval_data, num_eval, size, preprocess):
    """The held-out images of an accuracy check: ``eval_data`` (preprocessed, numpy) or generated ones."""
    if eval_data is None:
        return (generated_images(num_eval, size, preprocess, EVAL_SEED),
                'held-out generated images (seed %d)' % EVAL_SEED)
    held = np.asarray(eval_data, np.float32)[:num_eval]
    if len(held) == 0:
        raise ExportError('no held-out images')
    return held, 'held-out images'


def top1_agreement(a, b):
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def mean_cosine(a, b):
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30
    return float(np.mean(num / den))

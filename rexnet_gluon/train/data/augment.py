"""Training augmentations of the ReXNet recipe for Gluon data pipelines.

The paper trains with timm's ``--aa rand-m9-mstd0.5 --reprob 0.2 --remode pixel``. This module gives the same two
transforms as Gluon Blocks, so they go into ``gluon.data.vision.transforms.Compose`` (which only takes Blocks)::

    Compose([RandomResizedCrop(224), RandomFlipLeftRight(), RandAugment(),       # HWC uint8
             ToTensor(), Normalize(mean, std), RandomErasing()])                  # CHW float

The ops are done with Pillow, as timm does them, so each op is pixel-identical to timm's (tests/test_augment.py).
Randomness comes from a per-instance numpy Generator that is re-seeded when the instance finds itself in another
process (a forked or unpickled DataLoader worker); otherwise every worker would replay the same augmentation stream.
"""
import math
import multiprocessing
import os
import re

import mxnet as mx
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

__all__ = ['RandAugment', 'RandomErasing', 'apply_op', 'RAND_OPS', 'RAND_INCREASING_OPS', 'IMAGENET_FILL']

# timm's `img_mean` hparam: round(255 * IMAGENET_DEFAULT_MEAN), the colour geometric ops fill uncovered pixels with.
IMAGENET_FILL = (124, 116, 104)
_LEVEL_DENOM = 10.  # timm's 'Mx' scale: magnitude 10 is the strongest level of every op
_RANDOM_INTERPOLATION = (Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)

# timm `_RAND_TRANSFORMS`: what 'rand-m9-mstd0.5' uses (no 'inc1'); Cutout is RandomErasing, applied separately.
RAND_OPS = ('AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color',
            'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel')
# timm `_RAND_INCREASING_TRANSFORMS` ('inc1'): posterize/solarize/enhance ops whose severity grows with magnitude.
RAND_INCREASING_OPS = ('AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing',
                       'SolarizeAdd', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing',
                       'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel')
_GEOMETRIC = {'Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel'}
_ENHANCE = {'Color': ImageEnhance.Color, 'Contrast': ImageEnhance.Contrast,
            'Brightness': ImageEnhance.Brightness, 'Sharpness': ImageEnhance.Sharpness}
# Ops whose argument timm negates with probability 1/2 (its `_randomly_negate`).
_SIGNED = _GEOMETRIC | {name + 'Increasing' for name in _ENHANCE}


def op_argument(name, magnitude, negate=False):
    """timm's level -> argument map for op `name` at an (already clipped) magnitude on the 0..10 scale."""
    f = magnitude / _LEVEL_DENOM
    sign = -1. if negate else 1.
    if name in ('AutoContrast', 'Equalize', 'Invert'):
        return None
    if name == 'Rotate':
        return sign * (f * 30.)                      # degrees, +-30 at magnitude 10
    if name in ('ShearX', 'ShearY'):
        return sign * (f * 0.3)
    if name in ('TranslateXRel', 'TranslateYRel'):
        return sign * (f * 0.45)                     # fraction of the image side
    if name == 'Posterize':
        return int(f * 4)                            # bits kept: 0..4, milder with magnitude (TF EfficientNet)
    if name == 'PosterizeIncreasing':
        return 4 - int(f * 4)
    if name == 'Solarize':
        return min(256, int(f * 256))                # threshold, milder with magnitude
    if name == 'SolarizeIncreasing':
        return 256 - min(256, int(f * 256))
    if name == 'SolarizeAdd':
        return min(128, int(f * 110))
    if name in _ENHANCE:
        return f * 1.8 + 0.1                         # enhance factor 0.1..1.9, no sign
    if name[:-len('Increasing')] in _ENHANCE:
        return max(0.1, 1.0 + sign * (f * .9))       # away from 1.0 (identity) either way
    raise ValueError('unknown RandAugment op %r' % (name,))


def apply_op(img, name, magnitude, negate=False, resample=Image.Resampling.BICUBIC, fill=IMAGENET_FILL):
    """Apply one op to a PIL image exactly as timm's `AugmentOp` does with that magnitude, sign and resampling."""
    arg = op_argument(name, magnitude, negate)
    if name in _GEOMETRIC:
        if img.mode == 'L':
            fill = int(round(sum(fill) / len(fill)))
        geo = dict(resample=resample, fillcolor=tuple(fill) if img.mode != 'L' else fill)
        if name == 'Rotate':
            return img.rotate(arg, **geo)
        # PIL's AFFINE data maps output (x, y) to input (a x + b y + c, d x + e y + f).
        w, h = img.size
        matrix = {'ShearX': (1, arg, 0, 0, 1, 0), 'ShearY': (1, 0, 0, arg, 1, 0),
                  'TranslateXRel': (1, 0, arg * w, 0, 1, 0), 'TranslateYRel': (1, 0, 0, 0, 1, arg * h)}[name]
        return img.transform(img.size, Image.Transform.AFFINE, matrix, **geo)
    if name == 'AutoContrast':
        return ImageOps.autocontrast(img)
    if name == 'Equalize':
        return ImageOps.equalize(img)
    if name == 'Invert':
        return ImageOps.invert(img)
    if name.startswith('Posterize'):
        if arg <= 0:
            # Keeping 0 bits is black (TF's `x >> 8 << 8`, older Pillow). Pillow >= 11 rejects bits=0, so timm
            # itself raises there (Posterize at m < 2.5, PosterizeIncreasing at m = 10).
            return img.point([0] * 256 * len(img.getbands()))
        return img if arg >= 8 else ImageOps.posterize(img, arg)
    if name.startswith('SolarizeAdd'):
        lut = [min(255, i + arg) if i < 128 else i for i in range(256)]
        return img.point(lut * len(img.getbands()))
    if name.startswith('Solarize'):
        return ImageOps.solarize(img, arg)
    return _ENHANCE[name.replace('Increasing', '')](img).enhance(arg)


def _to_pil(x):
    """HWC (or HW) uint8 NDArray / numpy array / PIL image -> (PIL image, function turning a PIL image back)."""
    if isinstance(x, Image.Image):
        return x, lambda img: img
    arr = x.asnumpy() if isinstance(x, mx.nd.NDArray) else np.asarray(x)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError('RandAugment needs an HWC uint8 image with 1 or 3 channels (apply it before ToTensor), '
                         'got %s %s' % (arr.dtype, arr.shape))
    shape = arr.shape
    img = Image.fromarray(arr.reshape(shape[:2]) if arr.ndim == 3 and shape[2] == 1 else arr)

    def back(img):
        out = np.asarray(img, dtype=np.uint8).reshape(shape)
        return _like(x, out)
    return img, back


def _like(x, arr):
    """numpy result -> the array type (and device) of the input `x`."""
    if isinstance(x, mx.np.ndarray):
        return mx.np.array(arr, dtype=arr.dtype, ctx=x.ctx)
    if isinstance(x, mx.nd.NDArray):
        return mx.nd.array(arr, ctx=x.context, dtype=arr.dtype)
    return arr


class _RandomBlock(mx.gluon.Block):
    """A Block with its own numpy Generator, re-seeded on first use in a process other than its creator's.

    Gluon's DataLoader forks its workers (or unpickles the dataset in them) with a copy of this object, RNG state
    included. On first use in a worker we re-seed: from fresh OS entropy if `seed` is None, else from
    (seed, worker number), which keeps a seeded pipeline reproducible run to run while workers still differ.
    """

    def __init__(self, seed=None):
        super().__init__()
        self.seed = seed
        self._pid = os.getpid()
        self._rng = np.random.default_rng(seed)

    def _generator(self):
        pid = os.getpid()
        if pid != self._pid:
            # multiprocessing numbers its children (1,), (2,), ...; a bare os.fork child has no number.
            ident = multiprocessing.current_process()._identity or (pid,)
            self._rng = np.random.default_rng(None if self.seed is None else [self.seed, *ident])
            self._pid = pid
        return self._rng


class RandAugment(_RandomBlock):
    """timm's RandAugment (`rand_augment_transform`) on HWC uint8 images, before ToTensor.

    Per image: choose `num_layers` ops uniformly with replacement; each fires with probability `prob` at a
    magnitude drawn from N(magnitude, magnitude_std) (uniform on [0, magnitude] if magnitude_std is inf), clipped
    to [0, magnitude_max or 10]; rotate/shear/translate and the 'Increasing' enhance ops get a random sign, and
    geometric ops resample with a random choice of bilinear/bicubic (timm's default; fix it with `interpolation`).
    Input NDArray / numpy array / PIL image; the output has the input's type, shape and dtype.
    """

    def __init__(self, num_layers=2, magnitude=9, magnitude_std=0.5, fill=IMAGENET_FILL, seed=None, *,
                 prob=0.5, magnitude_max=None, increasing=False, interpolation=None):
        super().__init__(seed)
        self.num_layers = int(num_layers)
        self.magnitude = magnitude
        self.magnitude_std = float(magnitude_std)
        self.magnitude_max = magnitude_max
        self.prob = float(prob)
        self.fill = tuple(int(v) for v in fill)
        self.ops = RAND_INCREASING_OPS if increasing else RAND_OPS
        self.interpolation = interpolation

    # timm's config keys we support, with their value types ('t' transform sets / weights are not supported).
    _KEYS = {'m': int, 'n': int, 'mstd': float, 'mmax': int, 'inc': int, 'p': float}

    @classmethod
    def from_string(cls, config, fill=IMAGENET_FILL, seed=None, interpolation=None):
        """Build from timm's config string, e.g. 'rand-m9-mstd0.5' or 'rand-n3-m7-mstd0.5-inc1'.

        Defaults are timm's (m=10, n=2, mstd=0, p=0.5, inc=0); mstd > 100 means uniform magnitude sampling.
        Unlike timm, which silently skips sections it cannot parse, anything unknown raises ValueError.
        """
        parts = str(config).split('-')
        if parts[0] != 'rand':
            raise ValueError("RandAugment config must start with 'rand', got %r" % (config,))
        values = {}
        for part in parts[1:]:
            match = re.fullmatch(r'([a-z]+)(\d[\d.]*)', part)
            if match is None or match.group(1) not in cls._KEYS:
                raise ValueError('unknown RandAugment config section %r in %r; expected m<int>, n<int>, '
                                 'mstd<float>, mmax<int>, inc<0|1>, p<float>' % (part, config))
            key, text = match.groups()
            if key in values:
                raise ValueError('RandAugment config section %r given twice in %r' % (key, config))
            try:
                values[key] = cls._KEYS[key](text)
            except ValueError:
                raise ValueError('bad value %r for RandAugment config key %r in %r' % (text, key, config)) from None
        mstd = values.get('mstd', 0.)
        return cls(num_layers=values.get('n', 2), magnitude=values.get('m', int(_LEVEL_DENOM)),
                   magnitude_std=float('inf') if mstd > 100 else mstd, fill=fill, seed=seed,
                   prob=values.get('p', 0.5), magnitude_max=values.get('mmax'),
                   increasing=bool(values.get('inc', 0)), interpolation=interpolation)

    def sample_ops(self):
        """Draw one image's augmentation: [(name, magnitude, negate, resample)] for the ops that fire, in order."""
        rng = self._generator()
        draws = []
        for index in rng.integers(len(self.ops), size=self.num_layers):
            name = self.ops[index]
            if self.prob < 1.0 and rng.random() > self.prob:
                continue
            magnitude = self.magnitude
            if self.magnitude_std == float('inf'):
                magnitude = rng.uniform(0, magnitude)
            elif self.magnitude_std > 0:
                magnitude = rng.normal(magnitude, self.magnitude_std)
            magnitude = max(0., min(float(magnitude), self.magnitude_max or _LEVEL_DENOM))
            negate = bool(name in _SIGNED and rng.random() > 0.5)
            resample = None
            if name in _GEOMETRIC:
                resample = self.interpolation
                if resample is None:
                    resample = _RANDOM_INTERPOLATION[rng.integers(len(_RANDOM_INTERPOLATION))]
            draws.append((name, magnitude, negate, resample))
        return draws

    def apply(self, x, draws):
        """Apply drawn ops (from `sample_ops`) to image `x`; returns `x` itself when nothing fires."""
        if not draws:
            return x
        img, back = _to_pil(x)
        for name, magnitude, negate, resample in draws:
            img = apply_op(img, name, magnitude, negate, resample, self.fill)
        return back(img)

    def forward(self, x):
        return self.apply(x, self.sample_ops())

    def __repr__(self):
        return '%s(n=%d, m=%s, mstd=%s, mmax=%s, p=%s, ops=%s)' % (
            type(self).__name__, self.num_layers, self.magnitude, self.magnitude_std, self.magnitude_max,
            self.prob, 'increasing' if self.ops is RAND_INCREASING_OPS else 'default')


class RandomErasing(_RandomBlock):
    """timm's RandomErasing on a normalized CHW (or NCHW, per image) float tensor, after ToTensor + Normalize.

    With probability `probability`, erase 1..max_count rectangles, each of area uniform in [min_area, max_area] of
    the image (divided by the count) and log-uniform aspect in [min_aspect, max_aspect or 1/min_aspect]; 10 tries
    per rectangle to fit. Fill: 'pixel' per-pixel N(0,1), 'rand' one N(0,1) value per channel, 'const' zeros
    (normalized-space values: the data is already mean 0 / std 1). Returns a new array, the input is not modified.
    """

    def __init__(self, probability=0.2, mode='pixel', min_area=0.02, max_area=1 / 3, min_aspect=0.3,
                 max_aspect=None, max_count=1, seed=None):
        super().__init__(seed)
        self.mode = (mode or 'const').lower()
        if self.mode not in ('pixel', 'rand', 'const'):
            raise ValueError("RandomErasing mode must be 'pixel', 'rand' or 'const', got %r" % (mode,))
        self.probability = float(probability)
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.log_aspect = (math.log(min_aspect), math.log(max_aspect or 1 / min_aspect))
        self.max_count = int(max_count or 1)

    def sample_boxes(self, height, width):
        """Draw the rectangles [(top, left, h, w)] to erase in one height x width image ([] = leave it alone)."""
        rng = self._generator()
        if rng.random() > self.probability:
            return []
        count = 1 if self.max_count <= 1 else int(rng.integers(1, self.max_count + 1))
        boxes = []
        for _ in range(count):
            for _attempt in range(10):
                target = rng.uniform(self.min_area, self.max_area) * height * width / count
                aspect = math.exp(rng.uniform(*self.log_aspect))
                h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
                if h < height and w < width:
                    boxes.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
                    break
        return boxes

    def _values(self, channels, h, w, dtype):
        if self.mode == 'pixel':
            return self._rng.standard_normal((channels, h, w), dtype=np.float32).astype(dtype, copy=False)
        if self.mode == 'rand':
            return self._rng.standard_normal((channels, 1, 1), dtype=np.float32).astype(dtype, copy=False)
        return np.zeros((channels, 1, 1), dtype)

    def forward(self, x):
        shape = tuple(x.shape)
        if len(shape) not in (3, 4):
            raise ValueError('RandomErasing needs a CHW or NCHW tensor (apply it after ToTensor), got %s' % (shape,))
        plans = [self.sample_boxes(*shape[-2:]) for _ in range(1 if len(shape) == 3 else shape[0])]
        if not any(plans):
            return x
        arr = x.asnumpy() if isinstance(x, mx.nd.NDArray) else np.array(x, copy=True)
        for img, boxes in zip([arr] if arr.ndim == 3 else arr, plans):
            for top, left, h, w in boxes:
                img[:, top:top + h, left:left + w] = self._values(img.shape[0], h, w, img.dtype)
        return _like(x, arr)

    def __repr__(self):
        return '%s(p=%s, mode=%s, area=(%s, %s), max_count=%d)' % (
            type(self).__name__, self.probability, self.mode, self.min_area, self.max_area, self.max_count)

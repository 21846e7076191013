"""What is done to each image: decoding, the random resized crop, colour jitter, PCA lighting, RandAugment and
random erasing (training); resize and center crop (validation); normalization."""
import math
import os

import numpy as np

from .sources import DataError

__all__ = ['AugmentConfig', 'decode', 'random_resized_crop', 'TrainTransform', 'ValTransform']

# PCA lighting noise of AlexNet / GluonCV (RandomLighting), RGB, 0..255 scale.
_EIGVAL = np.array([55.46, 4.794, 1.148], dtype=np.float32)
_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                    [-0.5808, -0.0045, -0.8140],
                    [-0.5836, -0.6948, 0.4203]], dtype=np.float32)
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class AugmentConfig:
    """What the training transform does (GluonCV's defaults; RandAugment and erasing are the ReXNet recipe's)."""

    def __init__(self, input_size=224, crop_ratio=0.875, mean=(123.68, 116.779, 103.939),
                 std=(58.393, 57.12, 57.375), min_random_area=0.08, color_jitter=0.4, pca_noise=0.1,
                 randaugment=None, reprob=0.0, remode='pixel', recount=1, interpolation='bilinear',
                 eval_interpolation='bilinear'):
        if interpolation not in INTERPOLATIONS:
            raise ValueError('interpolation must be one of %s, got %r' % (', '.join(INTERPOLATIONS), interpolation))
        if eval_interpolation not in INTERPOLATIONS[:2]:
            raise ValueError('eval_interpolation must be bilinear or bicubic, got %r' % (eval_interpolation,))
        self.input_size = int(input_size)
        self.crop_ratio = float(crop_ratio)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.min_random_area = float(min_random_area)
        self.color_jitter = float(color_jitter)
        self.pca_noise = float(pca_noise)
        self.randaugment = randaugment or None
        self.reprob = float(reprob)
        self.remode = remode
        self.recount = int(recount)
        self.interpolation = interpolation   # of the training crop's resize; 'random': bilinear or bicubic per image
        self.eval_interpolation = eval_interpolation   # of the validation resize

    @property
    def resize(self):
        """Validation: resize the shorter side to this, then center-crop input_size (GluonCV: ceil(in / ratio))."""
        return int(math.ceil(self.input_size / self.crop_ratio))

    @property
    def eval_preprocess(self):
        """The validation transform as the predictor's preprocessing dict (mean/std on the 0..1 scale); training
        checkpoints keep it so predict/export/verify see the images as validation did."""
        return dict(input_size=self.input_size, crop=self.input_size, resize=self.resize, crop_pct=self.crop_ratio,
                    interpolation=self.eval_interpolation, mean=[m / 255.0 for m in self.mean],
                    std=[s / 255.0 for s in self.std])

    @property
    def needs_python_pipeline(self):
        # MXNet's ImageRecordIter has no "bilinear or bicubic at random" (its inter_method 10 picks among five)
        return bool(self.randaugment) or self.reprob > 0 or self.interpolation != 'bilinear'

    def describe(self):
        interp = '' if self.interpolation == 'bilinear' else ', %s interpolation' % self.interpolation
        parts = ['RandomResizedCrop(%d, area %.2f-1%s)' % (self.input_size, self.min_random_area, interp), 'flip']
        if self.randaugment:
            parts.append('RandAugment(%s)' % self.randaugment)
        else:
            if self.color_jitter:
                parts.append('ColorJitter(%.2f)' % self.color_jitter)
            if self.pca_noise:
                parts.append('Lighting(%.2f)' % self.pca_noise)
        parts.append('Normalize')
        if self.reprob > 0:
            parts.append('RandomErasing(%.2f, %s)' % (self.reprob, self.remode))
        return ' -> '.join(parts)


def decode(raw, where):
    import cv2
    img = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError('cannot decode the image %s' % where)
    return np.ascontiguousarray(img[:, :, ::-1])   # BGR -> RGB


INTERPOLATIONS = ('bilinear', 'bicubic', 'random')


def _resize(img, w, h, cubic=False):
    import cv2
    return cv2.resize(img, (int(w), int(h)), interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR)


def crop_interpolation(mode, rng):
    """True for bicubic: 'bicubic', or 'random' with probability 1/2 (timm's random bilinear/bicubic). No draw
    from ``rng`` otherwise, so a bilinear run's random stream is what it always was."""
    if mode == 'random':
        return bool(rng.random() < 0.5)
    return mode == 'bicubic'


def random_resized_crop(img, size, rng, scale=(0.08, 1.0), ratio=(3. / 4., 4. / 3.), cubic=False):
    """Inception crop (area and log-aspect uniform, 10 tries, else the center crop), resized to size x size
    (bilinear, or bicubic with ``cubic``)."""
    h, w = img.shape[:2]
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = rng.uniform(scale[0], scale[1]) * area
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = int(round(math.sqrt(target * aspect)))
        ch = int(round(math.sqrt(target / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            x0 = int(rng.integers(0, w - cw + 1))
            y0 = int(rng.integers(0, h - ch + 1))
            return _resize(img[y0:y0 + ch, x0:x0 + cw], size, size, cubic)
    # fallback: central crop with the aspect clamped to the range
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return _resize(img[y0:y0 + ch, x0:x0 + cw], size, size, cubic)


def _color_jitter(img, strength, rng):
    """Brightness, contrast, saturation (each factor 1 +- U(strength)) in random order, on float RGB 0..255."""
    for op in rng.permutation(3):
        alpha = 1.0 + rng.uniform(-strength, strength)
        if op == 0:
            img = img * alpha
        elif op == 1:
            gray_mean = float((img @ _GRAY).mean())
            img = img * alpha + gray_mean * (1.0 - alpha)
        else:
            gray = (img @ _GRAY)[:, :, None]
            img = img * alpha + gray * (1.0 - alpha)
        img = np.clip(img, 0, 255)
    return img


def _lighting(img, alphastd, rng):
    alpha = rng.normal(0, alphastd, size=3).astype(np.float32)
    rgb = (_EIGVEC * alpha) @ _EIGVAL
    return np.clip(img + rgb, 0, 255)


def _seeded_call(block, x, rng):
    """Run an :mod:`.augment` block with the sample's own Generator (its randomness lives in ``_rng``,
    re-seeded when the block finds itself in a new process: we set both, so the draw depends on the sample only)."""
    if hasattr(block, '_rng'):
        block._rng = rng
        block._pid = os.getpid()
    return block(x)


class TrainTransform:
    """GluonCV's training transform (RandomResizedCrop, flip, colour jitter 0.4, PCA lighting 0.1, ToTensor,
    Normalize), with optional RandAugment (on the uint8 crop; it replaces jitter and lighting, as in timm) and
    random erasing (on the normalized tensor). Input: HWC uint8 RGB; output: CHW float32."""

    random = True

    def __init__(self, cfg):
        self.cfg = cfg
        self.mean = np.array(cfg.mean, dtype=np.float32)
        self.std = np.array(cfg.std, dtype=np.float32)
        self.randaugment = self.erasing = None
        if cfg.randaugment:
            from .augment import RandAugment
            self.randaugment = RandAugment.from_string(cfg.randaugment)
        if cfg.reprob > 0:
            from .augment import RandomErasing
            self.erasing = RandomErasing(probability=cfg.reprob, mode=cfg.remode, max_count=cfg.recount)

    def __call__(self, img, rng):
        cfg = self.cfg
        cubic = crop_interpolation(cfg.interpolation, rng)
        img = random_resized_crop(img, cfg.input_size, rng, scale=(cfg.min_random_area, 1.0), cubic=cubic)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        img = np.ascontiguousarray(img)
        if self.randaugment is not None:
            img = np.asarray(_seeded_call(self.randaugment, img, rng))
        img = img.astype(np.float32)
        if self.randaugment is None:
            if cfg.color_jitter > 0:
                img = _color_jitter(img, cfg.color_jitter, rng)
            if cfg.pca_noise > 0:
                img = _lighting(img, cfg.pca_noise, rng)
        x = ((img - self.mean) / self.std).transpose(2, 0, 1)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.erasing is not None:
            x = np.asarray(_seeded_call(self.erasing, x, rng), dtype=np.float32)
        return x


class ValTransform:
    """Resize the shorter side to ceil(input / crop_ratio), center-crop input, normalize (GluonCV's val)."""

    random = False

    def __init__(self, cfg):
        self.cfg = cfg
        self.mean = np.array(cfg.mean, dtype=np.float32)
        self.std = np.array(cfg.std, dtype=np.float32)

    def __call__(self, img, rng=None):
        size, resize = self.cfg.input_size, self.cfg.resize
        h, w = img.shape[:2]
        if h > w:
            nw, nh = resize, int(resize * h / w)
        else:
            nw, nh = int(resize * w / h), resize
        img = _resize(img, nw, nh, self.cfg.eval_interpolation == 'bicubic')
        # floor, as MXNet's ImageRecordIter and GluonCV's CenterCrop do: with round() an odd margin (48 px from 55)
        # shifted the crop by one pixel against the --use-rec pipeline, and the two validations disagreed.
        y0, x0 = (nh - size) // 2, (nw - size) // 2
        img = img[y0:y0 + size, x0:x0 + size].astype(np.float32)
        return np.ascontiguousarray(((img - self.mean) / self.std).transpose(2, 0, 1), dtype=np.float32)

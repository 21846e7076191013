"""RandAugment / RandomErasing (rexnet_gluon.train.data.augment) against timm's, on real drawn images, and in a Gluon
pipeline."""
import os
import pickle
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

import mxnet as mx
from mxnet import gluon
from mxnet.gluon.data.vision import transforms as T

from rexnet_gluon.train.data.augment import (IMAGENET_FILL, RAND_INCREASING_OPS, RAND_OPS, RandAugment,
                                             RandomErasing, apply_op)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BILINEAR, BICUBIC = Image.Resampling.BILINEAR, Image.Resampling.BICUBIC
GEOMETRIC = ('Rotate', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel')
SIGNED = GEOMETRIC + ('ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing')


def drawing(width, height, seed):
    """A real RGB picture: colour gradient background, filled shapes, lines and text (not noise).

    Values stay within ~20..235 so AutoContrast has something to do."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([255 * xx / max(width - 1, 1), 255 * yy / max(height - 1, 1),
                     128 + 100 * np.sin((xx + yy) / 9.0)], axis=-1)
    img = Image.fromarray(np.clip(base * 0.8 + 20, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        box = [x0, y0, x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2))]
        colour = tuple(int(c) for c in rng.integers(20, 236, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour, outline=(30, 30, 30))
    draw.line([(0, height - 1), (width - 1, 0)], fill=(230, 230, 230), width=2)
    draw.text((4, height // 2), 'ReXNet', fill=(40, 40, 40))
    return img


IMAGES = [drawing(64, 64, 0), drawing(224, 160, 1)]


def timm_op(name, magnitude, negate, resample, monkeypatch):
    """timm's own op at a fixed magnitude (std 0, p=1), with its random sign forced to `negate`."""
    aa = pytest.importorskip('timm.data.auto_augment')
    monkeypatch.setattr(aa, '_randomly_negate', lambda v: -v if negate else v)
    return aa.AugmentOp(name, prob=1.0, magnitude=magnitude,
                        hparams=dict(img_mean=IMAGENET_FILL, interpolation=resample, translate_const=100))


def tensor(img):
    """ToTensor + Normalize of a PIL image, as the training pipeline feeds RandomErasing."""
    x = mx.nd.array(np.asarray(img), dtype='uint8')
    return T.Normalize(MEAN, STD)(T.ToTensor()(x))


# ---------------------------------------------------------------- each op equals timm's, pixel for pixel

@pytest.mark.parametrize('name', sorted(set(RAND_OPS) | set(RAND_INCREASING_OPS)))
def test_each_op_is_pixel_identical_to_timm(name, monkeypatch):
    cases = 0
    for img in IMAGES:
        for magnitude in (0, 1, 3, 5.5, 7.5, 9, 9.7, 10):
            for negate in ((False, True) if name in SIGNED else (False,)):
                for resample in ((BILINEAR, BICUBIC) if name in GEOMETRIC else (BICUBIC,)):
                    ours = np.asarray(apply_op(img, name, magnitude, negate, resample, IMAGENET_FILL))
                    op = timm_op(name, magnitude, negate, resample, monkeypatch)
                    if name.startswith('Posterize') and op.level_fn(magnitude, {})[0] == 0:
                        # keep 0 bits: Pillow >= 11 refuses bits=0 so timm raises; we give black, as old Pillow
                        with pytest.raises(ValueError, match='bits'):
                            op(img)
                        assert not ours.any()
                        continue
                    ref = np.asarray(op(img))
                    assert ours.shape == ref.shape and ours.dtype == ref.dtype == np.uint8
                    assert np.array_equal(ours, ref), (name, img.size, magnitude, negate, resample)
                    cases += 1
    # the op does something at magnitude 9 on these drawings (else the comparison would prove little)
    assert not np.array_equal(np.asarray(apply_op(IMAGES[1], name, 9, False, BICUBIC)), np.asarray(IMAGES[1]))
    assert cases >= 10


def test_op_lists_and_config_parsing_equal_timm():
    aa = pytest.importorskip('timm.data.auto_augment')
    assert list(RAND_OPS) == aa._RAND_TRANSFORMS
    assert list(RAND_INCREASING_OPS) == aa._RAND_INCREASING_TRANSFORMS
    for config in ('rand-m9-mstd0.5', 'rand-m9-mstd0.5-inc1', 'rand-n3-m7', 'rand-m9-mstd101', 'rand-m12-mmax15-p0.7',
                   'rand'):
        ref = aa.rand_augment_transform(config, dict(img_mean=IMAGENET_FILL))
        ours = RandAugment.from_string(config)
        assert ours.num_layers == ref.num_layers and ref.choice_weights is None, config
        assert list(ours.ops) == [op.name for op in ref.ops], config
        for op in ref.ops:
            assert (op.prob, op.magnitude, op.magnitude_std, op.magnitude_max) == \
                (ours.prob, ours.magnitude, ours.magnitude_std, ours.magnitude_max), config


def timm_magnitudes(magnitude, magnitude_std, n, seed):
    """The clipped magnitudes timm's AugmentOp (p=0.5) feeds its level function over n calls."""
    import random
    aa = pytest.importorskip('timm.data.auto_augment')
    op = aa.AugmentOp('Rotate', prob=0.5, magnitude=magnitude,
                      hparams=dict(img_mean=IMAGENET_FILL, magnitude_std=magnitude_std))
    seen = []
    op.level_fn = lambda level, _hparams: (seen.append(level), (0.,))[1]
    op.aug_fn = lambda img, *args, **kwargs: img
    random.seed(seed)
    for _ in range(n):
        op(None)
    return np.array(seen)


def test_magnitude_sampling_follows_timm():
    """Each op fires with p=0.5 at N(m, mstd) clipped to [0, 10]: same distribution as timm's; random sign/interp."""
    for m in (9, 10):
        ours = np.array([d[1] for d in _many(RandAugment(2, m, 0.5, seed=m), 3000)])
        ref = timm_magnitudes(m, 0.5, 6000, seed=m)
        assert abs(len(ours) / 6000 - 0.5) < 0.02 and abs(len(ref) / 6000 - 0.5) < 0.02   # 2 layers x p=0.5
        assert ours.max() <= 10 and ref.max() <= 10
        assert abs(np.mean(ours == 10) - np.mean(ref == 10)) < 0.03                        # clipped mass
        assert np.abs(np.percentile(ours, [5, 25, 50, 75]) - np.percentile(ref, [5, 25, 50, 75])).max() < 0.06
    assert abs(np.mean(ours == 10) - 0.5) < 0.03                                           # m=10: half clipped
    draws = _many(RandAugment(2, 9, 0.5, seed=1), 3000)
    signed = [d[2] for d in draws if d[0] in SIGNED]
    assert abs(np.mean(signed) - 0.5) < 0.05 and not any(d[2] for d in draws if d[0] not in SIGNED)
    interps = [d[3] for d in draws if d[0] in GEOMETRIC]
    assert set(interps) == {BILINEAR, BICUBIC} and abs(np.mean([i == BICUBIC for i in interps]) - 0.5) < 0.05
    assert all(d[3] is None for d in draws if d[0] not in GEOMETRIC)
    # mstd > 100 ('mstd101') samples uniformly on [0, m]
    uniform = np.array([d[1] for d in _many(RandAugment.from_string('rand-m9-mstd101', seed=3), 2000)])
    assert uniform.min() < 0.2 and uniform.max() > 8.8 and abs(uniform.mean() - 4.5) < 0.2
    fixed = RandAugment(2, 9, 0.0, seed=4, interpolation=BILINEAR)
    assert {(d[1], d[3]) for d in _many(fixed, 300) if d[0] in GEOMETRIC} == {(9.0, BILINEAR)}


def _many(ra, n):
    return [d for _ in range(n) for d in ra.sample_ops()]


# ---------------------------------------------------------------- RandAugment as a whole

def test_rand_augment_200_samples_matches_timm_replay_and_is_uniform(monkeypatch):
    ra = RandAugment(2, 9, 0.5, seed=123)
    counts = dict.fromkeys(RAND_OPS, 0)
    changed, diffs = 0, []
    for i in range(200):
        img = IMAGES[i % 2]
        x = mx.nd.array(np.asarray(img), dtype='uint8')
        draws = ra.sample_ops()
        y = ra.apply(x, draws)
        assert isinstance(y, mx.nd.NDArray) and y.shape == x.shape and y.dtype == np.uint8
        for name, *_ in draws:
            counts[name] += 1
        diff = np.abs(y.asnumpy().astype(int) - x.asnumpy()).mean()
        changed += diff > 0
        diffs.append(diff)
        if i < 40:   # replay the same draws through timm's ops: the composition is identical too
            ref = img
            for name, magnitude, negate, resample in draws:
                ref = timm_op(name, magnitude, negate, resample or BICUBIC, monkeypatch)(ref)
            assert np.array_equal(y.asnumpy(), np.asarray(ref)), draws
    n = sum(counts.values())
    assert 170 < n < 230                                                # 200 images x 2 layers x p=0.5
    expected = n / len(RAND_OPS)
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 36.1, counts                                          # chi-square, 14 dof, p = 0.001
    assert min(counts.values()) > 0
    assert 0.6 < changed / 200 < 0.9 and np.mean(diffs) > 5             # P(no op fires) = 1/4


def test_rand_augment_input_types_seed_and_from_string():
    arr = np.asarray(IMAGES[1])
    outs = [RandAugment(seed=7)(mx.nd.array(arr, dtype='uint8')).asnumpy() for _ in range(2)]
    assert np.array_equal(outs[0], outs[1])                            # seeded: reproducible
    a, b = RandAugment(seed=7), RandAugment.from_string('rand-m9-mstd0.5', seed=7)
    assert repr(a) == repr(b)
    seq_a = [a(arr) for _ in range(20)]
    seq_b = [b(arr) for _ in range(20)]
    assert all(isinstance(y, np.ndarray) and y.shape == arr.shape and y.dtype == np.uint8 for y in seq_a)
    assert all(np.array_equal(p, q) for p, q in zip(seq_a, seq_b))
    assert len({p.tobytes() for p in seq_a}) > 10
    unseeded = [RandAugment()(arr) for _ in range(8)]
    assert len({p.tobytes() for p in unseeded}) > 1
    assert isinstance(RandAugment(seed=0)(IMAGES[0]), Image.Image)
    gray = np.asarray(IMAGES[0].convert('L'))[:, :, None]
    ra = RandAugment(seed=3)
    assert all(ra(gray).shape == gray.shape for _ in range(30))
    with pytest.raises(ValueError, match='uint8'):
        ra(np.zeros((3, 8, 8), np.float32))


@pytest.mark.parametrize('config', ['auto-m9', 'rand-x9', 'rand-m9.5', 'rand-mstd', 'rand-m9-m8', 'rand-tweights',
                                    'rand--m9', '', 'rand-m9-mstd0.5-foo1'])
def test_from_string_rejects_bad_configs(config):
    with pytest.raises(ValueError):
        RandAugment.from_string(config)


# ---------------------------------------------------------------- RandomErasing

def test_random_erasing_erases_one_gaussian_rectangle():
    for trial in range(40):
        img = IMAGES[trial % 2]
        x = tensor(img)
        before = x.asnumpy().copy()
        y = RandomErasing(probability=1.0, mode='pixel', seed=trial)(x)
        assert isinstance(y, mx.nd.NDArray) and y.shape == x.shape and y.dtype == np.float32
        assert np.array_equal(x.asnumpy(), before)                     # input not modified
        out = y.asnumpy()
        changed = (out != before).any(axis=0)
        rows, cols = np.nonzero(changed)
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        h, w = bottom - top, right - left
        assert changed[top:bottom, left:right].all() and changed.sum() == h * w   # exactly one rectangle
        assert (out != before)[:, top:bottom, left:right].all()           # every channel
        keep = np.ones_like(changed)
        keep[top:bottom, left:right] = False
        assert np.array_equal(out[:, keep], before[:, keep])              # the rest bit-identical
        area = changed.size
        assert 0.02 * area - (h + w) <= h * w <= area / 3 + (h + w)       # h, w are rounded to whole pixels
        patch = out[:, top:bottom, left:right]
        assert abs(patch.mean()) < 0.35 and 0.75 < patch.std() < 1.25, (patch.mean(), patch.std())


def test_random_erasing_modes_batch_and_numpy():
    x = tensor(IMAGES[1])
    for mode, check in (('rand', lambda p: np.allclose(p, p[:, :1, :1])), ('const', lambda p: not p.any())):
        out, before = RandomErasing(1.0, mode=mode, seed=5)(x).asnumpy(), x.asnumpy()
        region = (out != before).any(axis=0)
        rows, cols = np.nonzero(region)
        assert check(out[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1])
    batch = mx.nd.stack(*[tensor(IMAGES[1])] * 6)
    erased = RandomErasing(1.0, seed=6)(batch).asnumpy()
    assert all((erased[i] != batch[i].asnumpy()).any() for i in range(6))
    assert len({(erased[i] != batch[i].asnumpy()).sum() for i in range(6)}) > 1   # independent per image
    npx = x.asnumpy()
    y = RandomErasing(1.0, seed=0)(npx)
    assert isinstance(y, np.ndarray) and (y != npx).any() and np.array_equal(npx, x.asnumpy())
    with pytest.raises(ValueError):
        RandomErasing(mode='blur')
    with pytest.raises(ValueError, match='CHW'):
        RandomErasing(1.0)(np.zeros((8, 8), np.float32))


def test_random_erasing_probability():
    x = tensor(IMAGES[0].resize((32, 32)))
    assert RandomErasing(probability=0.0, seed=0)(x) is x
    assert all(np.array_equal(RandomErasing(0.0)(x).asnumpy(), x.asnumpy()) for _ in range(50))
    re = RandomErasing(probability=0.2, seed=11)
    rate = np.mean([not np.array_equal(re(x).asnumpy(), x.asnumpy()) for _ in range(1000)])
    assert abs(rate - 0.2) <= 0.04, rate


def test_pickle_round_trip_keeps_state():
    pipe = T.Compose([RandAugment(seed=1), T.ToTensor(), T.Normalize(MEAN, STD), RandomErasing(1.0, seed=2)])
    copy = pickle.loads(pickle.dumps(pipe))
    x = mx.nd.array(np.asarray(IMAGES[0]), dtype='uint8')
    for _ in range(5):
        assert np.array_equal(pipe(x).asnumpy(), copy(x).asnumpy())


# ---------------------------------------------------------------- a real Gluon pipeline with worker processes

@pytest.fixture(scope='module')
def jpeg_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('imagefolder')
    for c in range(2):
        os.makedirs(root / ('class%d' % c))
        for i in range(6):
            drawing(96, 80, 10 * c + i).save(root / ('class%d' % c) / ('%d.jpg' % i), quality=90)
    return str(root)


def test_imagefolder_dataloader_pipeline(jpeg_folder):
    dataset = gluon.data.vision.ImageFolderDataset(jpeg_folder)
    pipeline = T.Compose([T.RandomResizedCrop(32), T.RandomFlipLeftRight(), RandAugment(), T.ToTensor(),
                          T.Normalize(MEAN, STD), RandomErasing()])
    loader = gluon.data.DataLoader(dataset.transform_first(pipeline), batch_size=4, num_workers=2, shuffle=True)
    batches = list(loader)
    assert len(batches) == 3
    for data, label in batches:
        assert data.shape == (4, 3, 32, 32) and data.dtype == np.float32 and label.shape == (4,)
        assert np.isfinite(data.asnumpy()).all()


class _WithPid(gluon.data.Dataset):
    """Same image every index, labelled with the worker process that loaded it."""

    def __init__(self, image, n):
        self._image, self._n = image, n

    def __len__(self):
        return self._n

    def __getitem__(self, idx):
        time.sleep(0.02)   # keep one worker busy so the other takes the next batch
        return self._image, os.getpid()


class _NoReseedErasing(RandomErasing):
    """Control: the naive version that never re-seeds (forked workers then share the RNG stream)."""

    def _generator(self):
        return self._rng


def _worker_streams(transform):
    image = mx.nd.array(np.asarray(IMAGES[0].resize((32, 32))), dtype='uint8')
    loader = gluon.data.DataLoader(_WithPid(image, 16).transform_first(transform), batch_size=2, num_workers=2)
    streams = {}
    for data, pid in loader:
        for sample, p in zip(data.asnumpy(), pid.asnumpy().astype(int)):
            streams.setdefault(int(p), []).append(sample)
    assert len(streams) == 2 and os.getpid() not in streams, list(streams)
    a, b = streams.values()
    return [np.array_equal(p, q) for p, q in zip(a, b)]


@pytest.mark.parametrize('seed', [None, 0])
def test_workers_draw_independent_streams(seed):
    same = _worker_streams(T.Compose([RandAugment(seed=seed), T.ToTensor()]))
    assert not all(same[:4]), same
    same = _worker_streams(T.Compose([T.ToTensor(), RandomErasing(1.0, seed=seed)]))
    assert not any(same), same
    # the check is not vacuous: without the re-seed, the forked workers replay one stream
    assert all(_worker_streams(T.Compose([T.ToTensor(), _NoReseedErasing(1.0, seed=seed)])))

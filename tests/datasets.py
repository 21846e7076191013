"""Small real image data sets for the training tests: shapes drawn with Pillow, as an ImageFolder and as RecordIO.

Four classes (checkerboard, disc, cross, stripes) in random colours, sizes, positions and orientations on a
random background (chosen so a small CNN learns them from a few hundred images in seconds),
saved as JPEG files ``root/{train,val}/<class>/<n>.jpg`` and packed with MXNet's own RecordIO writer
(``mx.recordio.MXIndexedRecordIO`` + ``mx.recordio.pack``, i.e. ``im2rec.py --pass-through --pack-label``) into
``root/rec/{train,val}.rec`` + ``.idx``. Deterministic for a given seed.
"""
import io
import os

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ('checker', 'circle', 'cross', 'stripes')   # sorted: the ImageFolder label order


def _colour_pair(rng):
    while True:
        bg = rng.integers(0, 256, 3)
        fg = rng.integers(0, 256, 3)
        if np.abs(bg.astype(int) - fg.astype(int)).sum() > 200:
            return tuple(int(v) for v in bg), tuple(int(v) for v in fg)


def draw(kind, size, rng):
    """One ``size`` x ``size`` RGB image of ``kind``."""
    bg, fg = _colour_pair(rng)
    img = Image.new('RGB', (size, size), bg)
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.25, 0.4) * size                    # half-extent of the shape
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    if kind == 'circle':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
    elif kind == 'cross':
        w = max(2, int(r * rng.uniform(0.35, 0.55)))
        d.rectangle([cx - r, cy - w / 2, cx + r, cy + w / 2], fill=fg)
        d.rectangle([cx - w / 2, cy - r, cx + w / 2, cy + r], fill=fg)
    elif kind == 'checker':
        cell = rng.uniform(0.12, 0.2) * size
        x0, y0 = rng.uniform(-cell, 0, 2)
        for i in range(int(size / cell) + 2):
            for j in range(int(size / cell) + 2):
                if (i + j) % 2 == 0:
                    d.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell], fill=fg)
    elif kind == 'stripes':
        period = rng.uniform(0.18, 0.3) * size
        width = max(1, int(period / 2))
        if rng.random() < 0.5:
            for x in np.arange(rng.uniform(0, period), size, period):
                d.line([(x, 0), (x, size)], fill=fg, width=width)
        else:
            for y in np.arange(rng.uniform(0, period), size, period):
                d.line([(0, y), (size, y)], fill=fg, width=width)
    else:
        raise ValueError(kind)
    return img


def _jpeg(img):
    buf = io.BytesIO()
    img.save(buf, format='JPEG', quality=95)
    return buf.getvalue()


def make_shapes_dataset(root, train_per_class=100, val_per_class=40, size=32, seed=0, classes=CLASSES,
                        rec=True):
    """Write the data set under ``root``; returns a dict of paths and counts."""
    import mxnet as mx
    rng = np.random.default_rng(seed)
    out = dict(root=root, classes=list(classes))
    for split, per_class in (('train', train_per_class), ('val', val_per_class)):
        records = []
        for label, kind in enumerate(classes):
            folder = os.path.join(root, split, kind)
            os.makedirs(folder, exist_ok=True)
            for n in range(per_class):
                data = _jpeg(draw(kind, size, rng))
                with open(os.path.join(folder, '%04d.jpg' % n), 'wb') as f:
                    f.write(data)
                records.append((label, data))
        out['num_' + split] = len(records)
        if rec:
            os.makedirs(os.path.join(root, 'rec'), exist_ok=True)
            rec_path, idx_path = (os.path.join(root, 'rec', split + ext) for ext in ('.rec', '.idx'))
            order = rng.permutation(len(records)) if split == 'train' else np.arange(len(records))
            writer = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, 'w')
            for key, i in enumerate(order):
                label, data = records[i]
                writer.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, float(label), key, 0), data))
            writer.close()
            out['rec_' + split], out['idx_' + split] = rec_path, idx_path
    return out


if __name__ == '__main__':   # python tests/datasets.py DIR : write the data set for a look
    import sys
    print(make_shapes_dataset(sys.argv[1] if len(sys.argv) > 1 else 'shapes'))

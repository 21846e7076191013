"""The validation pipelines agree: ImageFolder (Python, OpenCV) and RecordIO (MXNet's ImageRecordIter, --use-rec).

Sizes are chosen so that the center crop's margin is odd (48 px from 55, 40 from 46, 32 from 37) and the images are
not square: where the Python pipeline rounded the crop offset and MXNet floors it, each image came out shifted by a
pixel (max |diff| 3.3 in normalised units) and the two validation errors differed.
"""
import io

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from rexnet_gluon.train import data as D

SIZES = [(48, 48), (60, 45), (45, 61), (100, 37), (37, 100), (224, 300), (301, 225), (64, 63)]


@pytest.fixture(scope='module')
def folder_and_rec(tmp_path_factory):
    """The same JPEG bytes as an ImageFolder and as an indexed RecordIO file (blocky content: sharp edges)."""
    root = tmp_path_factory.mktemp('val_pipelines')
    (root / 'val' / 'a').mkdir(parents=True)
    rng = np.random.default_rng(0)
    writer = mx.recordio.MXIndexedRecordIO(str(root / 'val.idx'), str(root / 'val.rec'), 'w')
    for i, (w, h) in enumerate(SIZES):
        blocks = (rng.random((h // 4 + 1, w // 4 + 1, 3)) * 255).astype(np.uint8)
        img = np.kron(blocks, np.ones((4, 4, 1), np.uint8))[:h, :w]
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, format='JPEG', quality=95)
        (root / 'val' / 'a' / ('%04d.jpg' % i)).write_bytes(buf.getvalue())
        writer.write_idx(i, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, i, 0), buf.getvalue()))
    writer.close()
    return root


@pytest.mark.parametrize('size', [48, 40, 32, 224])
def test_folder_and_recordio_validation_inputs_are_equal(folder_and_rec, size):
    cfg = D.AugmentConfig(size, 0.875)
    root = folder_and_rec
    folder = np.concatenate([x.asnumpy() for x, _ in D.ValLoader(D.FolderSource(str(root / 'val')), cfg, 3, 0)])
    rec = np.concatenate([x.asnumpy() for x, _ in D.RecordIterValLoader(str(root / 'val.rec'), str(root / 'val.idx'),
                                                                       cfg, 3, 0)])
    assert folder.shape == rec.shape == (len(SIZES), 3, size, size)
    assert folder.std() > 0.5                          # real content, not a blank comparison
    assert np.abs(folder - rec).max() < 1e-5           # float rounding of the normalisation only

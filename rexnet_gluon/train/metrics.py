"""Per-epoch metrics (CSV, JSON, PNG curves) and the top-1/top-5 evaluation that fills them."""
import csv
import io
import json

import numpy as np
from mxnet import gluon

from ..utils.fileio import atomic_write, atomic_write_text
from .checkpoints import json_default
from .errors import TrainingError

__all__ = ['METRIC_FIELDS', 'MetricsLog', 'evaluate']

METRIC_FIELDS = ('epoch', 'lr', 'train_loss', 'train_acc', 'val_top1', 'val_top5', 'val_err_top1', 'val_err_top5',
                 'samples_per_sec', 'epoch_time', 'batches', 'num_update')


class MetricsLog:
    """Per-epoch metrics, rewritten atomically as CSV and JSON after every epoch; PNG curves on demand."""

    def __init__(self, base, plot_path=None, history=None, info=None):
        self.base = base
        self.plot_path = plot_path
        self.rows = list(history or [])
        self.info = info or {}

    @property
    def csv_path(self):
        return self.base + '.csv' if self.base else None

    @property
    def json_path(self):
        return self.base + '.json' if self.base else None

    def add(self, row):
        self.rows.append(row)
        self.write()

    def write(self):
        if not self.base:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction='ignore', lineterminator='\n')
        w.writeheader()
        for row in self.rows:
            w.writerow({k: ('' if row.get(k) is None else row.get(k)) for k in METRIC_FIELDS})
        atomic_write_text(self.csv_path, buf.getvalue())
        atomic_write_text(self.json_path, json.dumps(dict(self.info, epochs=self.rows), indent=1,
                                                     default=json_default))

    def plot(self):
        """Loss, train accuracy, val top-1/top-5 and lr against the epoch, as a PNG (written atomically)."""
        if not self.plot_path or not self.rows:
            return None
        from matplotlib.figure import Figure   # no pyplot: no global backend state, no display needed
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        fig = Figure(figsize=(10, 7))
        FigureCanvasAgg(fig)
        axes = fig.subplots(2, 2)
        ep = [r['epoch'] for r in self.rows]

        def series(key):
            pts = [(r['epoch'], r[key]) for r in self.rows if r.get(key) is not None]
            return [p[0] for p in pts], [p[1] for p in pts]

        axes[0, 0].plot(*series('train_loss'), 'o-')
        axes[0, 0].set_title('training loss')
        axes[0, 1].plot(*series('train_acc'), 'o-')
        axes[0, 1].set_title('training accuracy')
        axes[1, 0].plot(*series('val_top1'), 'o-', label='top-1')
        axes[1, 0].plot(*series('val_top5'), 's--', label='top-5')
        axes[1, 0].set_title('validation accuracy')
        axes[1, 0].legend()
        axes[1, 1].plot(ep, [r['lr'] for r in self.rows], 'o-')
        axes[1, 1].set_title('learning rate (end of epoch)')
        for ax in axes.flat:
            ax.set_xlabel('epoch')
            ax.grid(True, alpha=0.3)
        fig.suptitle(self.info.get('title', 'training curves'))
        fig.tight_layout()
        atomic_write(self.plot_path, lambda tmp: fig.savefig(tmp, format='png', dpi=80))
        return self.plot_path


def evaluate(net, loader, ctx, dtype='float32', max_batches=None, on_batch=None):
    """Top-1/top-5 accuracy over all validation samples, the batches split over all devices."""
    c1 = c5 = n = 0
    for i, (data, label) in enumerate(loader):
        if max_batches and i >= max_batches:
            break
        devices = ctx[:max(1, min(len(ctx), data.shape[0]))]
        datas = gluon.utils.split_and_load(data, devices, even_split=False)
        outs = [net(x.astype(dtype, copy=False)) for x in datas]
        out = np.concatenate([o.astype('float32').asnumpy() for o in outs])
        lab = label.asnumpy().reshape(-1).astype(np.int64)
        k = min(5, out.shape[1])
        top = np.argsort(-out, axis=1, kind='stable')[:, :k]
        c1 += int((top[:, 0] == lab).sum())
        c5 += int((top == lab[:, None]).any(axis=1).sum())
        n += len(lab)
        if on_batch:
            on_batch(i, c1 / n, c5 / n, n)
    if n == 0:
        raise TrainingError('the validation data is empty')
    return dict(top1=c1 / n, top5=c5 / n, err_top1=1 - c1 / n, err_top5=1 - c5 / n, samples=n)

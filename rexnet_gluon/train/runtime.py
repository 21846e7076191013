"""Where the run executes: its devices (contexts), its place in a distributed run (kvstore, Horovod) and how
gradients are combined, and the seeding of every random generator."""
import os
import random

import mxnet as mx
import numpy as np

from .errors import TrainingError

__all__ = ['HOROVOD_HELP', 'DIST_HELP', 'make_contexts', 'Runtime', 'setup_runtime', 'seed_everything']

HOROVOD_HELP = (
    '--kvstore horovod needs horovod built with MXNet support, and it is not importable here (%s).\n'
    'Build it in this environment with `bash scripts/install_horovod.sh` (part of the README set-up command; about '
    '2 minutes on 2 cores, needs g++ and CMake). It runs, after installing cloudpickle psutil pyyaml packaging wheel:\n'
    '  HOROVOD_WITH_MXNET=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITH_GLOO=1 \\\n'
    '  HOROVOD_WITHOUT_MPI=1 HOROVOD_CPU_OPERATIONS=gloo pip install --no-build-isolation --no-cache-dir '
    'horovod==0.28.1\n'
    '(CMake must see mxnet, hence no build isolation. GPU: add HOROVOD_GPU_OPERATIONS=NCCL with CUDA and NCCL '
    'installed.) Then launch one process per device:\n'
    '  horovodrun -np 4 -H localhost:4 [--gloo] python scripts/train_imagenet.py --kvstore horovod --num-gpus 1 ...\n'
    'Or use the built-in parameter server instead: --kvstore dist_sync with scripts/launch_dist.py.')

DIST_HELP = (
    '--kvstore %s needs the ps-lite environment of a distributed launch (DMLC_ROLE, DMLC_PS_ROOT_URI, '
    'DMLC_PS_ROOT_PORT, DMLC_NUM_SERVER, DMLC_NUM_WORKER), which is not set. Launch with e.g.\n'
    '  python scripts/launch_dist.py -n 2 -s 1 -- python scripts/train_imagenet.py --kvstore %s ...\n'
    'or start the scheduler, server(s) and workers yourself with those variables (servers: python '
    'scripts/launch_dist.py --serve, which can load --optimizer nag_torch; a plain `import mxnet` server cannot).')


def make_contexts(opt):
    """--gpus / --num-gpus -> [gpu(i)], --cpus N -> [cpu(0..N-1)], else [cpu()]."""
    gpus = []
    if opt.gpus:
        try:
            gpus = [int(g) for g in str(opt.gpus).split(',') if g.strip()]
        except ValueError:
            raise TrainingError('--gpus must be comma-separated GPU ids like 0,1,2,3, got %r' % opt.gpus)
        if opt.num_gpus and opt.num_gpus != len(gpus):
            raise TrainingError('--gpus %s and --num-gpus %d disagree; give one of them' % (opt.gpus, opt.num_gpus))
    elif opt.num_gpus > 0:
        gpus = list(range(opt.num_gpus))
    if gpus and opt.cpus:
        raise TrainingError('--cpus cannot be combined with GPUs (--gpus/--num-gpus)')
    if gpus:
        try:
            available = mx.context.num_gpus()
        except mx.base.MXNetError:
            available = 0
        if max(gpus) >= available:
            raise TrainingError('asked for GPU(s) %s but MXNet sees %d GPU(s) (a CPU-only MXNet build, no CUDA '
                                'device, or a GPU build without kernels for this GPU). Use --cpus N for a '
                                'multi-device run on the CPU.' % (gpus, available))
        return [mx.gpu(i) for i in gpus]
    if opt.cpus:
        return [mx.cpu(i) for i in range(opt.cpus)]
    return [mx.cpu()]


class Runtime:
    """Where this process sits in a (possibly distributed) run and how gradients are combined.

    ``step_batch(per_worker_batch)`` is what to pass to ``trainer.step``: dist kvstores SUM the workers' gradients
    (and dist_async fixes rescale_grad at the first step), so the step divides by the global batch; Horovod's
    DistributedTrainer already averages over workers; one machine sums over its devices only.
    """

    def __init__(self, kind='local', kv='device', rank=0, num_workers=1, hvd=None):
        self.kind, self.kv, self.rank, self.num_workers, self.hvd = kind, kv, int(rank), int(num_workers), hvd

    @property
    def is_root(self):
        return self.rank == 0

    def step_batch(self, per_worker_batch):
        return per_worker_batch * (self.num_workers if self.kind == 'dist' else 1)

    @property
    def kv_type(self):
        return self.kv if isinstance(self.kv, str) else getattr(self.kv, 'type', str(self.kv))

    def trainer_kwargs(self):
        """gluon.Trainer arguments. Dist kvstores keep MXNet's default, the update on the servers: with
        update_on_kvstore=False, dist_sync in MXNet 1.9.1 intermittently returns wrong (if worker-identical)
        weights (seen in 2 of 4 localhost runs of a 3-layer net; the default matched the single-process result
        every time). The price: optimizer states live on the servers and cannot be saved (see ``save_states``)."""
        return dict(kvstore=self.kv)

    @property
    def can_save_states(self):
        return self.kind != 'dist'

    def describe(self):
        return '%s (rank %d of %d worker%s)' % (self.kv_type, self.rank, self.num_workers,
                                               's' if self.num_workers > 1 else '')


def setup_runtime(opt, ctx):
    """Create the kvstore (or initialise Horovod); returns (Runtime, contexts)."""
    if opt.kvstore == 'horovod':
        try:
            import horovod.mxnet as hvd
        except ImportError as err:
            raise TrainingError(HOROVOD_HELP % err)
        if len(ctx) > 1:
            raise TrainingError('--kvstore horovod runs one device per process: launch N processes with horovodrun '
                                'and give --num-gpus 1 (each process takes the GPU of its local rank), not %d '
                                'devices' % len(ctx))
        hvd.init()
        if ctx[0].device_type == 'gpu':
            ctx = [mx.gpu(hvd.local_rank())]
        return Runtime('horovod', 'horovod', hvd.rank(), hvd.size(), hvd), ctx
    if opt.kvstore.startswith('dist'):
        if 'DMLC_ROLE' not in os.environ or 'DMLC_PS_ROOT_URI' not in os.environ:
            raise TrainingError(DIST_HELP % (opt.kvstore, opt.kvstore))
        kv = mx.kv.create(opt.kvstore)
        return Runtime('dist', kv, kv.rank, kv.num_workers), ctx
    return Runtime('local', opt.kvstore, 0, 1), ctx


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed & 0xffffffff)
    mx.random.seed(seed)

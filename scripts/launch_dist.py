#!/usr/bin/env python
"""Start an MXNet ps-lite job on this machine: one scheduler, S servers, N workers running COMMAND.

    python scripts/launch_dist.py -n 2 -s 1 --log-dir logs -- \\
        python scripts/train_imagenet.py --model rexnet_1.0x --kvstore dist_sync ...

This replaces `mxnet/tools/launch.py --launcher local`, which fails on Python >= 3.9 (Thread.isAlive).
For several machines, run the scheduler/servers on one host and set the same DMLC_* variables on each
(printed with --print-env); start each server with `DMLC_ROLE=server python scripts/launch_dist.py --serve`
(see below). Exits with the first non-zero worker status, after stopping everything; a scheduler or server that
fails first stops the job (status 1).

The servers run the optimizer the workers send them (pickled). A plain `python -c 'import mxnet'` server runs its
loop half-way through `import mxnet`, where rexnet_gluon cannot be imported, so it cannot unpickle rexnet_gluon's
optimizer (`--optimizer nag_torch`, the `--recipe rexnet` default); MXNet ignores that error and the server then
returns the summed gradients as the weights. `--serve` (how this launcher starts its servers) imports mxnet and
rexnet_gluon.train.optimizer first, then runs the server loop, and exits if an optimizer still does not unpickle.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def serve():
    """Run the ps-lite role of DMLC_ROLE (server or scheduler) with rexnet_gluon's optimizer importable: mxnet is
    imported with the role hidden (so its import does not start the loop), then rexnet_gluon.train.optimizer, then
    the loop. An optimizer that the server cannot unpickle or set ends the process (status 3) instead of being
    ignored."""
    role = os.environ.pop('DMLC_ROLE', None)
    if role not in ('server', 'scheduler'):
        sys.exit('launch_dist --serve: DMLC_ROLE must be server or scheduler, got %r' % role)
    sys.path.insert(0, REPO)                                   # run from a checkout too
    import traceback
    import mxnet  # noqa: F401  (imported as a worker would: no server loop inside the import)
    import rexnet_gluon.train.optimizer  # noqa: F401
    from mxnet.kvstore import kvstore_server
    make_controller = kvstore_server.KVStoreServer._controller

    def strict_controller(self):
        controller = make_controller(self)

        def run(cmd_id, cmd_body, extra):
            try:
                controller(cmd_id, cmd_body, extra)
            except BaseException:                          # MXNet's ctypes callback would swallow it
                traceback.print_exc()
                print('launch_dist: this %s cannot use the optimizer the workers sent: stopping' % role,
                      file=sys.stderr, flush=True)
                os._exit(3)
        return run

    kvstore_server.KVStoreServer._controller = strict_controller
    os.environ['DMLC_ROLE'] = role
    kvstore_server._init_kvstore_server_module()               # runs the loop, then exits
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-n', '--num-workers', type=int, help='number of workers (required unless --serve)')
    p.add_argument('-s', '--num-servers', type=int, default=1)
    p.add_argument('--host', default='127.0.0.1', help='scheduler address (default 127.0.0.1)')
    p.add_argument('--port', type=int, default=0, help='scheduler port (default: a free one)')
    p.add_argument('--log-dir', help='write worker{i}.log / server{i}.log / scheduler.log here (default: inherit)')
    p.add_argument('--timeout', type=float, default=None, help='seconds before everything is stopped')
    p.add_argument('--print-env', action='store_true', help='print the DMLC_* variables and exit')
    p.add_argument('--serve', action='store_true', help='be the server (or scheduler) of DMLC_ROLE, with '
                   'rexnet_gluon\'s optimizer importable (how this launcher starts its servers; on other hosts: '
                   'DMLC_ROLE=server DMLC_PS_ROOT_URI=... python scripts/launch_dist.py --serve)')
    p.add_argument('command', nargs=argparse.REMAINDER, help='worker command (after --)')
    args = p.parse_args(argv)
    if args.serve:
        return serve()
    if args.num_workers is None:
        p.error('-n/--num-workers is required')
    cmd = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not cmd and not args.print_env:
        p.error('give the worker command after --, e.g. -- python scripts/train_imagenet.py ...')
    if args.num_workers < 1 or args.num_servers < 1:
        p.error('need at least one worker and one server')
    env = dict(os.environ, DMLC_PS_ROOT_URI=args.host, DMLC_PS_ROOT_PORT=str(args.port or free_port()),
               DMLC_NUM_SERVER=str(args.num_servers), DMLC_NUM_WORKER=str(args.num_workers),
               DMLC_NODE_HOST=args.host)
    if args.print_env:
        print(' '.join('%s=%s' % (k, env[k]) for k in sorted(env) if k.startswith('DMLC_')))
        return 0
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    def start(role, i, command):
        out = open(os.path.join(args.log_dir, '%s%s.log' % (role, '' if role == 'scheduler' else i)), 'w') \
            if args.log_dir else None
        return subprocess.Popen(command, env=dict(env, DMLC_ROLE=role), stdout=out, stderr=subprocess.STDOUT
                                if out else None)

    # Importing mxnet with DMLC_ROLE=scheduler runs its loop until the workers finish; servers: see serve().
    background = [('scheduler', start('scheduler', 0, [sys.executable, '-c', 'import mxnet']))]
    background += [('server%d' % i, start('server', i, [sys.executable, os.path.abspath(__file__), '--serve']))
                   for i in range(args.num_servers)]
    workers = [start('worker', i, cmd) for i in range(args.num_workers)]
    deadline = None if args.timeout is None else time.time() + args.timeout
    status = 0
    try:
        while any(w.poll() is None for w in workers):
            failed = [(name, b.returncode) for name, b in background if b.poll() not in (None, 0)]
            if failed:
                print('launch_dist: %s exited with status %d before the workers finished, stopping the job%s'
                      % (failed[0] + (' (see its log in %s)' % args.log_dir if args.log_dir else '',)),
                      file=sys.stderr)
                return 1
            if deadline is not None and time.time() > deadline:
                raise subprocess.TimeoutExpired(cmd, args.timeout)
            time.sleep(0.2)
        for w in workers:
            status = status or w.returncode
        for _, b in background:
            b.wait(timeout=60)
    except subprocess.TimeoutExpired:
        print('launch_dist: timed out, stopping the job', file=sys.stderr)
        status = 1
    finally:
        for proc in [b for _, b in background] + workers:
            if proc.poll() is None:
                proc.kill()
    return status


if __name__ == '__main__':
    sys.exit(main())

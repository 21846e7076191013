#!/usr/bin/env python
"""Start an MXNet ps-lite job on this machine: one scheduler, S servers, N workers running COMMAND.

    python scripts/launch_dist.py -n 2 -s 1 --log-dir logs -- \\
        python scripts/train_imagenet.py --model rexnet_1.0x --kvstore dist_sync ...

This replaces `mxnet/tools/launch.py --launcher local`, which fails on Python >= 3.9 (Thread.isAlive).
For several machines, run the scheduler/servers on one host and set the same DMLC_* variables on each
(printed with --print-env). Exits with the first non-zero worker status, after stopping everything.
"""
import argparse
import os
import socket
import subprocess
import sys


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('-n', '--num-workers', type=int, required=True)
    p.add_argument('-s', '--num-servers', type=int, default=1)
    p.add_argument('--host', default='127.0.0.1', help='scheduler address (default 127.0.0.1)')
    p.add_argument('--port', type=int, default=0, help='scheduler port (default: a free one)')
    p.add_argument('--log-dir', help='write worker{i}.log / server{i}.log / scheduler.log here (default: inherit)')
    p.add_argument('--timeout', type=float, default=None, help='seconds before everything is stopped')
    p.add_argument('--print-env', action='store_true', help='print the DMLC_* variables and exit')
    p.add_argument('command', nargs=argparse.REMAINDER, help='worker command (after --)')
    args = p.parse_args(argv)
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

    # Importing mxnet with DMLC_ROLE=scheduler/server runs that role's loop until the workers finish.
    background = [start('scheduler', 0, [sys.executable, '-c', 'import mxnet'])]
    background += [start('server', i, [sys.executable, '-c', 'import mxnet']) for i in range(args.num_servers)]
    workers = [start('worker', i, cmd) for i in range(args.num_workers)]
    status = 0
    try:
        for w in workers:
            rc = w.wait(timeout=args.timeout)
            status = status or rc
        for b in background:
            b.wait(timeout=60)
    except subprocess.TimeoutExpired:
        print('launch_dist: timed out, stopping the job', file=sys.stderr)
        status = 1
    finally:
        for proc in background + workers:
            if proc.poll() is None:
                proc.kill()
    return status


if __name__ == '__main__':
    sys.exit(main())

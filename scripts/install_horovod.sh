#!/usr/bin/env bash
# Builds Horovod with MXNet + Gloo (CPU, no MPI) into the active Python environment, so `--kvstore horovod` and the
# two-rank test (tests/train/test_train.py::test_horovod_two_ranks) run. Part of the README's set-up command, which
# .ci/run runs verbatim; run it after `pip install -e .` (the build compiles against the installed mxnet).
#
# Idempotent: does nothing when `import horovod.mxnet` already works with the pinned version and Gloo.
# Needs g++ and CMake >= 3.13 (CMake from the system, else `pip install cmake` into this environment).
# Takes about 2 minutes on 2 cores (the C++ core, Gloo and the MXNet ops are compiled).
#
# Why horovod==0.28.1: it is the last Horovod release and the last one that builds against MXNet 1.x (MXNet 1.9.1
# here); rexnet_gluon's Horovod runtime (DistributedTrainer averaging the gradients, the step over the per-worker
# batch) is tested against it.
# Why these build variables: HOROVOD_WITH_MXNET=1 makes a missing MXNet extension a build error instead of a silent
# skip; Gloo is the CPU collective library that needs no MPI installation (horovodrun --gloo); TensorFlow and
# PyTorch extensions are not built (torch is installed for the parity checks only, and building against it would
# take minutes more); HOROVOD_CPU_OPERATIONS=gloo makes Gloo do the CPU allreduce.
# Why --no-build-isolation: Horovod's CMake imports mxnet to find its headers and libmxnet.so, so the build must see
# this environment's mxnet. Why --no-cache-dir: the wheel is linked against this environment's libmxnet.so; pip
# must not hand a wheel built for another environment to a new one.
set -euo pipefail

HOROVOD_VERSION=0.28.1
PYTHON=${PYTHON:-python}

check() {
    "$PYTHON" - "$HOROVOD_VERSION" <<'EOF'
import sys
import horovod
import horovod.mxnet as hvd
assert horovod.__version__ == sys.argv[1], 'horovod %s is installed, %s is pinned' % (horovod.__version__, sys.argv[1])
assert hvd.gloo_built(), 'horovod is built without Gloo'
EOF
}

if check >/dev/null 2>&1; then
    echo "install_horovod: horovod $HOROVOD_VERSION with MXNet and Gloo is already importable; nothing to do"
    exit 0
fi

fail() { echo "install_horovod: $*" >&2; exit 1; }

"$PYTHON" -c 'import mxnet' 2>/dev/null ||
    fail "mxnet does not import in $("$PYTHON" -c 'import sys; print(sys.prefix)'): run pip install -e . first"
command -v g++ >/dev/null || fail "g++ is missing (Debian/Ubuntu: apt-get install g++)"
if ! command -v cmake >/dev/null; then
    echo "install_horovod: no cmake on PATH; installing it into this environment with pip"
    "$PYTHON" -m pip install -q 'cmake>=3.13,<4' || fail "could not pip install cmake (or install it: apt-get install cmake)"
    PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"   # where pip put it
    hash -r
    command -v cmake >/dev/null || fail "pip installed cmake, but it is not on PATH"
fi

# Horovod's setup.py needs these while it builds (setup_requires) and at run time (install_requires); with no build
# isolation they must already be here. wheel: for setuptools < 70.1, which has no bdist_wheel of its own.
"$PYTHON" -m pip install -q cloudpickle psutil pyyaml packaging wheel || fail "could not install Horovod's build requirements"

log=$(mktemp)
start=$(date +%s)
echo "install_horovod: building horovod==$HOROVOD_VERSION with MXNet + Gloo (about 2 minutes; log: $log)"
if ! HOROVOD_WITH_MXNET=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 \
     HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_CPU_OPERATIONS=gloo \
     "$PYTHON" -m pip install --no-build-isolation --no-cache-dir "horovod==$HOROVOD_VERSION" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    fail "building horovod==$HOROVOD_VERSION failed (the last 60 lines of $log are above). It needs g++, CMake >= 3.13 and mxnet importable in this environment."
fi
if ! err=$(check 2>&1); then
    echo "$err" >&2
    fail "horovod==$HOROVOD_VERSION installed but does not work with MXNet and Gloo (build log: $log)"
fi
rm -f "$log"
echo "install_horovod: horovod $HOROVOD_VERSION with MXNet + Gloo built and installed in $(( $(date +%s) - start )) s"

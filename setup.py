"""rexnet_gluon: ReXNet for MXNet Gluon / GluonCV. Install with: pip install -e ".[test]" (see README)."""
from setuptools import find_packages, setup

# Each pin says why; these make a fresh Python 3.11 machine work.
REQUIRES = [
    'mxnet==1.9.1',             # the last MXNet release (1.x Gluon API)
    'numpy==1.23.5',            # mxnet 1.9.1 uses np.bool, removed in numpy 1.24: newer numpy breaks `import mxnet`
    'gluoncv==0.10.5.post0',    # last GluonCV; its import refuses torch >= 2 (rexnet_gluon.gluoncv_compat handles it)
    # opencv: gluoncv depends on opencv-python; never install opencv-python-headless beside it (they share
    # files, and removing one leaves an empty cv2 package).
    'tqdm',                     # progress bars for downloads, conversion and training
    'requests',                 # pretrained-weight downloads (retries, Google Drive confirm step)
    'portalocker',              # a lock so two processes never download the same weights at once
    'Pillow',                   # image loading for the predictor and the augmentations
    'matplotlib',               # training-curve and benchmark PNGs
]
EXPORT = [
    'onnx==1.14.1',             # mxnet's ONNX exporter imports onnx.mapping, removed in later onnx releases
    'onnxruntime==1.18.1',      # 1.15-1.17 need numpy >= 1.24.2; 1.18.1 runs beside numpy 1.23.5
    'protobuf<5',               # onnx 1.14 is built against protobuf 4
    'openvino==2026.4.1',       # newest; runs beside numpy 1.23.5 + mxnet (Python >= 3.10)
    'nncf==2.14.1',             # openvino-int8: the newest NNCF whose requirements allow numpy 1.23.5 (2.15+ need
                                # numpy >= 1.24, 3.x numpy 2); it imports openvino.runtime, gone in OpenVINO 2026, which
                                # deploy/export/openvino_int8.py aliases to openvino (quantization checked with 2026.4.1)
]
TORCH = [
    'torch==2.14.1',            # only for parity checks; 2.14.1 + torchvision 0.29.1 is the pair that imports
    'torchvision==0.29.1',      # beside numpy 1.23.5 (PyPI torchvision fails beside the torch 2.13.0 CPU build)
    'timm',                     # the independent PyTorch ReXNet reference (numerically the official network)
]
# Horovod is no extra: it compiles against the installed mxnet (pip --no-build-isolation, build variables), which an
# extra cannot ask for; scripts/install_horovod.sh does it, as part of the README's set-up command.
TEST = TORCH + EXPORT + [
    'pytest',
    'safetensors',              # writes .safetensors test files (reading them needs no package)
]

setup(
    name='rexnet_gluon',
    version='0.1.0',
    description='ReXNet (Rethinking Channel Dimensions for Efficient Model Design) for MXNet Gluon and GluonCV',
    long_description=open('README.md').read() if __import__('os').path.exists('README.md') else '',
    long_description_content_type='text/markdown',
    license='MIT',
    packages=find_packages(include=['rexnet_gluon', 'rexnet_gluon.*']),
    package_data={'rexnet_gluon.convert': ['official_state_dicts.json']},   # the official layout listing
    python_requires='>=3.8,<3.12',   # numpy 1.23.5 has no cp312 wheels; gluoncv needs distutils (gone in 3.12)
    install_requires=REQUIRES,
    extras_require={'torch': TORCH, 'export': EXPORT, 'test': TEST},
)

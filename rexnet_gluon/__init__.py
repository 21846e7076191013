"""rexnet_gluon: ReXNet (Han et al., arXiv 2007.00992) for MXNet Gluon / GluonCV.

Importing this package never imports torch or gluoncv.
"""
__version__ = '0.1.0'

from .spec import ReXNetSpec, BlockSpec, v1_spec, lite_spec  # noqa: F401
from .model import ReXNet, ReXNetV1, ReXNetV1Lite, ReXNetFeatures  # noqa: F401

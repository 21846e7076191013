"""rexnet_gluon: ReXNet (Han et al., arXiv 2007.00992) for MXNet Gluon / GluonCV.

Importing this package never imports torch or gluoncv.
"""
__version__ = '0.1.0'

from .spec import ReXNetSpec, BlockSpec, v1_spec, lite_spec  # noqa: F401
from .model import ReXNet, ReXNetV1, ReXNetV1Lite, ReXNetFeatures  # noqa: F401
from .zoo import get_model, get_model_list  # noqa: F401
from .deploy.predictor import load_predictor  # noqa: F401  (engines and their runtimes are imported when used)
from . import convert, zoo  # noqa: F401  (rexnet_gluon.convert.spec_from_name, rexnet_gluon.zoo.rexnet_1_0x)
from .gluoncv import import_gluoncv, register_gluoncv, install_import_hook as _install_import_hook
from .train import optimizer as _optimizer  # noqa: F401  (registers 'nag_torch' for gluon.Trainer, GluonCV scripts)

# A later plain `import gluoncv` then works beside torch >= 2 and lists the ReXNet names (cheap: no import now).
_install_import_hook()

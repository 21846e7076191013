"""Warning filters for the command lines."""
import warnings

__all__ = ['quiet_warnings']


def quiet_warnings():
    """MXNet 1.9.1 warns on import, on every hybridized call (untyped inputs) and in quantize_net (deprecation);
    none of it concerns the user of the command line."""
    warnings.filterwarnings('ignore', category=DeprecationWarning)
    warnings.filterwarnings('ignore', message='Cannot decide type for the following arguments')
    warnings.filterwarnings('ignore', message='WARNING: This will be deprecated after MXNet 2.0')

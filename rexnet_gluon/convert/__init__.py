"""PyTorch checkpoints -> Gluon parameters, and the proof that the two networks agree.

- ``checkpoint_io``: torch-free reader of ``.pth`` (zip and legacy pickle) and ``.safetensors``, restricted unpickler.
- ``mapping``: the parameter table of each layout (official, timm, official lite), shape-based model detection,
  conversion, atomic ``.params`` writing.
- ``parity``: runs the PyTorch reference and the Gluon net on the same input; the tolerance rule.
- ``torch_reference``, ``reference_lite``: the PyTorch references (timm's RexNet; our official-lite copy). torch only
  here, imported lazily.
- ``cli``: ``python convert/pt2mx.py``.

May import: the network (``spec``, ``model``) and ``utils``.
"""
from .checkpoint_io import CheckpointError, load_state_dict, read_checkpoint  # noqa: F401
from .mapping import (LAYOUTS, ConversionError, Param, convert_checkpoint, convert_state_dict, detect,  # noqa: F401
                      model_name, param_table, save_params, spec_from_name)

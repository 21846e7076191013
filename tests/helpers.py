"""Paths shared by the tests (the test folders mirror the package: tests/convert, tests/train, ...)."""
import os

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


def random_checkpoint(folder, seed, name='rexnet_1.0x'):
    """(.pth, .params) of a seeded random PyTorch ``name`` (1000 classes) in ``folder``: saved with torch.save,
    converted by the converter. torch is needed (imported here, not at the top: conftest imports this module)."""
    import torch
    from rexnet_gluon.convert import convert_checkpoint, save_params, spec_from_name
    from rexnet_gluon.convert.torch_reference import randomize_, reference_model
    ref = randomize_(reference_model(spec_from_name(name), 1000), seed=seed)
    pth = os.path.join(str(folder), '%s-random.pth' % name)
    torch.save(ref.state_dict(), pth)
    return pth, save_params(convert_checkpoint(pth, model=name)[0], os.path.join(str(folder), '%s-random.params' % name))

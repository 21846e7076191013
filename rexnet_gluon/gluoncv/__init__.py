"""GluonCV glue: the ReXNet names in GluonCV's model zoo, and GluonCV's own scripts run unmodified.

- ``compat``: ``import_gluoncv()`` (GluonCV imported beside torch >= 2, names registered), ``register_gluoncv()``
  and the import hook that ``import rexnet_gluon`` installs so a later plain ``import gluoncv`` gets the same.
- ``__main__``: ``python -m rexnet_gluon.gluoncv SCRIPT.py [args]``.

May import: the network, ``zoo``, ``utils`` (never ``train`` or ``deploy``).
"""
from .compat import import_gluoncv, install_import_hook, register_gluoncv  # noqa: F401

"""The CPU speed benchmark, MXNet configurations against timm (``python scripts/benchmark.py``; the method and the
configurations are described in ``cli.py``).

Modules: ``child`` (what one child process builds and times; run as a script), ``runner`` (machine description,
child processes, interleaved rounds), ``report`` (tables, chart), ``cli`` (arguments and main).

May import: the network, ``convert`` (random weights), ``deploy.fast``; only ``child`` imports them, by absolute
name and inside its functions (a timm child must not import MXNet).
"""

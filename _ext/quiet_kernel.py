"""Sphinx extension: run the chapters on a kernel that keeps its own start-up chatter quiet.

ipykernel 7 logs "Kernel is running over TCP without encryption" at every start, once per
chapter. The kernel runs on this machine's loopback interface for the length of a build, so the
warning is harmless noise in the build log. This puts ``_ext/kernels/python3`` first on
``JUPYTER_PATH`` for the build: the same ``python -m ipykernel_launcher`` command as the usual
``python3`` kernel, with the kernel application's log level at ERROR. What the chapters' code
prints or warns is not affected (it reaches the cells' outputs, not the application's log).
"""

import os
from pathlib import Path


def setup(app):
    here = str(Path(__file__).resolve().parent)
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if here not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([here, *paths])
    return {"parallel_read_safe": True, "parallel_write_safe": True}

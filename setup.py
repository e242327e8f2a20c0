"""Builds the optional C accelerator (``wskit._core._mask``); everything
else is in setup.cfg.

``optional=True`` makes setuptools' build_ext warn and go on when the
extension fails to compile (no compiler, no Python headers): the install
then uses the pure-Python masking (``wskit/_core/masking.py``). Setting
``WSKIT_NO_EXTENSIONS=1`` at install skips the build altogether.
"""

import os

from setuptools import Extension, setup

extensions = []
if os.environ.get("WSKIT_NO_EXTENSIONS", "") in ("", "0"):
    extensions.append(
        Extension("wskit._core._mask", ["wskit/_core/_mask.c"], optional=True)
    )

setup(ext_modules=extensions)

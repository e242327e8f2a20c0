"""Builds the optional C accelerators (``wskit._core._mask``, the masking
XOR, and ``wskit._core._frames``, the small-message decoder); everything
else is in setup.cfg.

``optional=True`` makes setuptools' build_ext warn and go on when the
extension fails to compile (no compiler, no Python headers): the install
then uses their pure-Python equivalents (``wskit/_core/masking.py``,
``wskit/_core/smallframes.py``). Setting
``WSKIT_NO_EXTENSIONS=1`` at install skips the build altogether.
"""

import os

from setuptools import Extension, setup

# The XOR loop both extensions include (setup.cfg's package_data puts it in
# the sdist; depends= rebuilds them when it changes).
XOR = "wskit/_core/_xor.h"
extensions = []
if os.environ.get("WSKIT_NO_EXTENSIONS", "") in ("", "0"):
    extensions.append(
        Extension("wskit._core._mask", ["wskit/_core/_mask.c"], depends=[XOR], optional=True)
    )
    extensions.append(
        Extension("wskit._core._frames", ["wskit/_core/_frames.c"], depends=[XOR],
                  optional=True)
    )

setup(ext_modules=extensions)

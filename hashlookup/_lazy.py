"""numpy, imported on first use.

Importing numpy costs about 90 ms of CPU, a third of a whole ``hashlookup
match`` of ten million digest lines, whose text path (csrc/hl_linematch.c)
never needs it; so do ``info``, ``check`` and opening an index or dataset.
The modules on those paths take ``np`` from here::

    if TYPE_CHECKING:
        import numpy as np
    else:
        from hashlookup._lazy import numpy as np

What single lookups and the text match need is loaded when a file is
opened; numpy is imported by the first batch call.  A process that opens a
file and then drops privileges to a user who cannot read the installation
must import numpy before, if it uses batch calls.

The first attribute read imports numpy and copies its namespace into the
stand-in, so later reads are plain module-attribute lookups.  Concurrent
first reads are safe: ``importlib.import_module`` holds numpy's import lock.
"""

from __future__ import annotations

import importlib
import types
from typing import Any

__all__ = ["numpy"]


class _LazyModule(types.ModuleType):
    """Stands for a module until one of its attributes is read."""

    def __getattr__(self, attr: str) -> Any:
        # Only reached for names not copied in yet (all of them before the
        # first import; afterwards the real module's own lazy attributes).
        real = importlib.import_module(self.__name__)
        if "__file__" not in self.__dict__:
            self.__dict__.update(real.__dict__)
        return getattr(real, attr)


numpy: Any = _LazyModule("numpy")

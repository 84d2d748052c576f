"""One OpenBLAS thread while the GPS prior is fitted.

The fit's BLAS calls are tiny (L-BFGS-B on 5 parameters), yet OpenBLAS hands them to its
worker threads, which then spin waiting for more; on a busy 2-core machine they take the
cores from the likelihood's own threads (measured on 1M synthetic reports under load:
the optimiser runs 1.7 s with OpenBLAS's default threads, 0.4 s with one).
OPENBLAS_NUM_THREADS only counts before a library loads, and numpy and SciPy are loaded
long before a fit, so this sets the thread count of the loaded OpenBLAS libraries for the
duration of a block and restores it after, as threadpoolctl does. The libraries are found
in /proc/self/maps (Linux); elsewhere, or with another BLAS, it does nothing.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# the names OpenBLAS builds export: plain, numpy's and SciPy's wheels (prefix, ILP64 suffix)
_PREFIXES = ("openblas", "scipy_openblas")
_SUFFIXES = ("", "64_")
_LIBRARY = re.compile(r"\S*openblas\S*\.so[\d.]*$", re.IGNORECASE)


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Within the block, every loaded OpenBLAS uses one thread."""
    controls = _controls()
    before = [(get(), set_) for get, set_ in controls]
    for _, set_ in before:
        set_(1)
    try:
        yield
    finally:
        for threads, set_ in before:
            set_(threads)


def _controls() -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """(get, set) thread-count functions of each OpenBLAS loaded in this process."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {m.group(0) for line in maps.splitlines() if (m := _LIBRARY.search(line))}
    controls = []
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                set_ = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
                    controls.append((get, set_))
    return controls

"""Keep freed memory in the process: the chain allocates and frees large arrays per utterance.

noisereduce's STFTs, masks and resynthesis make several multi-megabyte numpy arrays per
utterance. With glibc's defaults, arrays above the (dynamic) mmap threshold are mapped fresh
and unmapped on free, so every utterance pays page faults and page zeroing in the kernel:
measured on the demo corpus, 37% of noisereduce's CPU time was system time and the same
denoising ran 1.9x faster once freed memory stayed in the heap (docs/performance.md).

:func:`keep_freed_memory` sets glibc's ``mallopt`` so that blocks up to ``mmap_threshold``
come from the heap and up to ``trim_threshold`` of free heap is kept for reuse. It costs at
most that much resident memory per process that calls it (a preprocessing actor, or the
benchmark's plain loop) and is a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# glibc <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 64 * 2**20  # an STFT of a few minutes of 16 kHz audio
TRIM_THRESHOLD = 512 * 2**20
TOP_PAD = 16 * 2**20


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD,
                      top_pad: int = TOP_PAD) -> bool:
    """Tune glibc's allocator for this process; True if it took effect."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt here: allocator left as it is")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in (
        (_M_MMAP_THRESHOLD, int(mmap_threshold)),
        (_M_TRIM_THRESHOLD, int(trim_threshold)),
        (_M_TOP_PAD, int(top_pad)),
    ))
    if not ok:
        log.debug("mallopt refused a setting: allocator partly tuned")
    return ok

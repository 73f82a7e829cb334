"""renameat2(2)'s two flags, which make a compare-and-swap on a name atomic: RENAME_NOREPLACE
(fail rather than replace what stands at the new name) and RENAME_EXCHANGE (swap two names, so
the entry replaced is kept, under the other name, where it can be checked).

Python 3.11's os module has neither, so the C library's renameat2 is called through ctypes.
Each function returns False where the C library, the kernel or the filesystem lacks the flag
(some FUSE filesystems, NFS): the caller then does what a plain rename allows.
"""

from __future__ import annotations

import ctypes
import errno
import os

_NOREPLACE = 1
_EXCHANGE = 2
# What renameat2 answers where the flag is not supported.
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP)


def _load() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):  # a C library older than glibc 2.28
        return None
    path, directory = ctypes.c_char_p, ctypes.c_int
    function.argtypes = (directory, path, directory, path, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_renameat2 = _load()


def _rename(old_dir: int, old: str, new_dir: int, new: str, flags: int) -> bool:
    if _renameat2 is None:
        return False
    if _renameat2(old_dir, os.fsencode(old), new_dir, os.fsencode(new), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), old, None, new)


def exchange(old_dir: int, old: str, new_dir: int, new: str) -> bool:
    """Swap the entries at `old` and `new` (both must exist), atomically; False: unsupported."""
    return _rename(old_dir, old, new_dir, new, _EXCHANGE)


def rename_noreplace(old_dir: int, old: str, new_dir: int, new: str) -> bool:
    """Rename `old` to `new` unless `new` exists (FileExistsError then), atomically; False:
    unsupported."""
    return _rename(old_dir, old, new_dir, new, _NOREPLACE)

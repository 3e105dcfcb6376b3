"""Reading gzip streams with zlib-ng, which inflates the long runs of zeros that disk images are
mostly made of many times faster than Python's zlib: the 512 MiB of a base image packed to 520 KiB
in 0.08 s instead of 1.4 s. The format and its checks (CRC and length of each member) are zlib's.

Only reading: what recon writes (bundles) is deflated by Python's zlib, so its bytes do not depend
on this library.
"""

from __future__ import annotations

from typing import BinaryIO

from zlib_ng import gzip_ng, zlib_ng

#: What a truncated or damaged stream raises.
ERRORS = (EOFError, gzip_ng.BadGzipFile, zlib_ng.error)


def open_reader(fileobj: BinaryIO) -> BinaryIO:
    """The uncompressed bytes of the gzip stream ``fileobj`` (every member), as a file."""
    return gzip_ng.GzipNGFile(fileobj=fileobj, mode="rb")


def member_reader():
    """A decompressor of exactly one gzip member (``decompress``, ``eof``, ``unused_data`` as zlib's)."""
    return zlib_ng.decompressobj(16 + zlib_ng.MAX_WBITS)

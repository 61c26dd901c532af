"""Writing a generator's files: byte-for-byte reproducible, gzipped where exports are."""
from __future__ import annotations

import gzip
import os


def gz_name(name: str, gzipped) -> str:
    """The name a generated file is written under (.gz when it is one of `gzipped`)."""
    return name + ".gz" if name in gzipped else name


def write_files(path: str, files: dict[str, list[str]], gzipped) -> None:
    """{file name: text chunks} -> files under `path`; `gzipped` names get gzip with
    mtime=0 and no embedded name, so the same input gives the same bytes every time."""
    os.makedirs(path, exist_ok=True)
    for name, chunks in files.items():
        data = "".join(chunks).encode("utf-8")
        with open(os.path.join(path, gz_name(name, gzipped)), "wb") as f:
            if name in gzipped:
                with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                    gz.write(data)
            else:
                f.write(data)

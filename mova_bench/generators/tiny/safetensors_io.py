"""Read and write ``.safetensors`` files without torch or the ``safetensors`` package.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian unsigned header
length ``N``, then ``N`` bytes of UTF-8 JSON mapping each tensor name to ``{"dtype", "shape",
"data_offsets": [begin, end]}`` (offsets into the byte buffer that follows the header) plus an
optional ``"__metadata__"`` object of string → string, then the raw little-endian buffer. No
pickle, no code execution: a file is bytes and JSON. Files written here load with
``safetensors.numpy.load_file`` / ``safetensors.torch.load_file`` and vice versa (F32/F64/I64/...).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U8": "u1", "BOOL": "?",
}
MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    pass


def _dtype_name(a: np.ndarray) -> str:
    s = a.dtype.newbyteorder("<").str if a.dtype.byteorder not in ("|",) else a.dtype.str
    for k, v in _DTYPES.items():
        if np.dtype(v).str == s:
            return k
    raise SafetensorsError(f"unsupported dtype {a.dtype}")


def save(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (name → array) in sorted name order, 8-byte aligned, atomically."""
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        kind = _dtype_name(a)
        b = a.astype(np.dtype(_DTYPES[kind]), copy=False).tobytes()
        header[name] = {"dtype": kind, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(tensors, metadata)``; arrays are read-only views of one bytes object, native-endian copies
    where needed. Raises :class:`SafetensorsError` on a malformed file."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise SafetensorsError(f"{path}: bad header length {n}")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafetensorsError(f"{path}: header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    buf = memoryview(data)[8 + n :]
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dt = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(s) for s in info["shape"])
            b0, b1 = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SafetensorsError(f"{path}: bad entry for {name!r}: {exc}") from None
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b0 <= b1 <= len(buf)) or b1 - b0 != count * dt.itemsize:
            raise SafetensorsError(f"{path}: {name!r} has offsets {b0}..{b1} that do not fit its shape {shape}")
        out[name] = np.frombuffer(buf[b0:b1], dtype=dt).reshape(shape)
    return out, {str(k): str(v) for k, v in meta.items()}

"""Read PyTorch checkpoints (zip, legacy pickle) and .safetensors into numpy.

Only the stdlib and numpy are used: torch is never imported. Pickles go
through a restricted unpickler whose allow-list maps every permitted global
to a stand-in defined here, so a checkpoint cannot run code on load.
"""
import collections
import io
import json
import math
import os
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["CheckpointError", "read_checkpoint", "load_state_dict"]

_RESAVE = "re-save its state_dict with torch.save(model.state_dict(), path)"


class CheckpointError(ValueError):
    """Any failure to read a checkpoint; the message names the file and a fix."""


def _err(path, what, todo):
    return CheckpointError(f"Cannot read checkpoint {path!r}: {what}. To fix: {todo}.")


# ---------------------------------------------------------------- dtypes
# torch dtype name -> numpy code. bfloat16 is read as raw uint16 and widened.
_NP_CODE = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1",
    "uint64": "u8", "uint32": "u4", "uint16": "u2", "uint8": "u1",
    "bool": "?", "complex64": "c8", "complex128": "c16",
}
_STORAGE_DTYPE = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}
_TORCH_DTYPE = {name: name for name in _NP_CODE}
_TORCH_DTYPE.update(float="float32", double="float64", half="float16", long="int64",
                    int="int32", short="int16", cfloat="complex64", cdouble="complex128")
_SAFETENSORS_DTYPE = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}


def _to_array(data, offset, size, stride, dtype, endian, path):
    """Materialise a (possibly strided) view of raw storage bytes as a C array."""
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    dt = np.dtype(_NP_CODE[dtype]).newbyteorder(endian)
    n_items = len(data) // dt.itemsize
    if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
        raise _err(path, f"tensor has malformed shape {size} / stride {stride}", "re-download it")
    if 0 in size:
        arr = np.zeros(size, dt)
    else:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= n_items:
            raise _err(path, f"storage holds {n_items} {dtype} elements but a tensor needs "
                       f"{last + 1} (file truncated or corrupt)", "re-download it")
        base = np.frombuffer(data, dt, count=n_items)[offset:]
        arr = np.lib.stride_tricks.as_strided(base, size, [s * dt.itemsize for s in stride])
    arr = np.array(arr, dtype=dt.newbyteorder("="), order="C")  # own, native-order copy
    if dtype == "bfloat16":  # bf16 is the top half of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


# ----------------------------------------------------- pickle stand-ins
class _Storage:
    def __init__(self, dtype, data, path, endian="<"):
        self.dtype, self.data, self.path, self.endian = dtype, data, path, endian


class _DType:
    """Stand-in for a torch storage class (FloatStorage...) or a torch dtype."""

    def __init__(self, dtype):
        self.dtype = dtype


class Namespace:
    """Inert stand-in for argparse.Namespace (timm stores training args)."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def __repr__(self):
        return "Namespace(%s)" % ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())


def _rebuild_tensor(storage, offset, size, stride, dtype=None, metadata=None):
    if storage.data is None:  # first pass of a legacy file: bytes not read yet
        return None
    arr = _to_array(storage.data, int(offset), size, stride, dtype or storage.dtype,
                    storage.endian, storage.path)
    if metadata and metadata.get("conj"):
        arr = np.conj(arr)
    if metadata and metadata.get("neg"):
        arr = -arr
    return arr


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    return _rebuild_tensor(storage, offset, size, stride, None, metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype,
                       metadata=None):
    # v3 carries an untyped (byte) storage plus an explicit dtype
    return _rebuild_tensor(storage, offset, size, stride, dtype.dtype, metadata)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data  # a Parameter is just its tensor for our purposes


def _codecs_encode(text, encoding="utf-8"):
    # protocol-2 pickles of `bytes` use _codecs.encode(str, 'latin1'); allow only that
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} refused")
    return text.encode("latin1")


_ALLOWED = {
    "collections.OrderedDict": collections.OrderedDict,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch.Size": lambda items=(): tuple(items),
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "_codecs.encode": _codecs_encode,
    "argparse.Namespace": Namespace,
}


class _Unpickler(pickle.Unpickler):
    """Unpickler that resolves globals only through the allow-list."""

    def __init__(self, file, path, load_storage=None):
        super().__init__(file, encoding="utf-8")
        self._path, self._load_storage = path, load_storage

    def find_class(self, module, name):
        module = "builtins" if module == "__builtin__" else module
        full = f"{module}.{name}"
        if full in _ALLOWED:
            return _ALLOWED[full]
        if module in ("torch", "torch.cuda", "torch.storage") and name in _STORAGE_DTYPE:
            return _DType(_STORAGE_DTYPE[name])
        if module == "torch" and name in _TORCH_DTYPE:
            return _DType(_TORCH_DTYPE[name])
        raise _err(self._path, f"this pickle wants to call `{full}`; only tensor rebuild "
                   "functions and plain containers are allowed, refusing to load untrusted "
                   "code", f"if you trust the file, {_RESAVE}")

    def persistent_load(self, pid):
        if self._load_storage is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        pid = tuple(p.decode("ascii") if isinstance(p, bytes) else p for p in pid)
        if pid[0] == "module":
            raise _err(self._path, "it contains a whole pickled nn.Module, not tensors",
                       f"load it with torch and {_RESAVE}")
        if pid[0] != "storage" or not isinstance(pid[1], _DType):
            raise pickle.UnpicklingError(f"unknown persistent id {pid[:2]!r}")
        return self._load_storage(*pid[1:])


def _unpickle(f, path, load_storage=None):
    try:
        return _Unpickler(f, path, load_storage).load()
    except (EOFError, pickle.UnpicklingError) as e:
        raise _err(path, f"the pickle stream is truncated or corrupt ({e})",
                   "re-download the file") from e


# ------------------------------------------------------------- formats
def _read_zip(path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise _err(path, f"file looks truncated (zip central directory missing: {e})",
                   "re-download it") from e
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise _err(path, f"zip archive without exactly one <folder>/data.pkl (found "
                       f"{len(pkls)}); it is not a torch.save checkpoint",
                       "pass a file written by torch.save")
        prefix = pkls[0][: -len("data.pkl")]

        def read(name):
            try:
                return zf.read(name)
            except KeyError:
                raise _err(path, f"record {name!r} is missing from the zip", "re-download it")
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise _err(path, f"zip record {name!r} is corrupt ({e})", "re-download it")

        endian = "<"
        if prefix + "byteorder" in names:
            order = read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise _err(path, f"unknown byteorder record {order!r}", "re-save it")
            endian = "<" if order == "little" else ">"
        cache = {}

        def load_storage(stype, key, location, numel):
            if key not in cache:
                cache[key] = _Storage(stype.dtype, read(f"{prefix}data/{key}"), path, endian)
            return cache[key]

        return _unpickle(io.BytesIO(read(pkls[0])), path, load_storage)


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def _read_legacy(path, f, size):
    if _unpickle(f, path) != _LEGACY_MAGIC:
        raise _err(path, "it is a pickle but not a PyTorch checkpoint (magic number "
                   "mismatch)", "pass a file written by torch.save")
    if _unpickle(f, path) != _LEGACY_PROTOCOL:
        raise _err(path, "unsupported legacy protocol version", f"{_RESAVE} with a recent torch")
    _unpickle(f, path)  # sys_info; storage bytes are always little-endian on disk
    start = f.tell()
    # Raw storages follow the object pickle and their element size is only known
    # from it, so pass 1 records the storage dtypes, pass 2 builds the arrays.
    dtypes, data = {}, {}

    def load_storage(stype, root_key, location, numel, view=None):
        dtypes.setdefault(root_key, stype.dtype)
        if root_key not in data:
            return _Storage(stype.dtype, None, path)
        buf = memoryview(data[root_key])
        if view is not None:  # pre-1.0 storage views: (view_key, offset, size) in elements
            isz = np.dtype(_NP_CODE[stype.dtype]).itemsize
            buf = buf[view[1] * isz:(view[1] + view[2]) * isz]
        return _Storage(stype.dtype, buf, path)

    _unpickle(f, path, load_storage)
    keys = _unpickle(f, path)
    if not isinstance(keys, list) or set(keys) != set(dtypes):
        raise _err(path, "storage key list does not match the tensors", "re-download it")
    for key in keys:
        head = f.read(8)
        nbytes = (struct.unpack("<q", head)[0] * np.dtype(_NP_CODE[dtypes[key]]).itemsize
                  if len(head) == 8 else -1)
        # bound the read by the file size so a corrupt count cannot force a huge allocation
        data[key] = f.read(nbytes) if 0 <= nbytes <= size - f.tell() else b""
        if nbytes < 0 or len(data[key]) != nbytes:
            raise _err(path, f"storage {key!r} is shorter than its header says (file "
                       "truncated)", "re-download it")
    f.seek(start)
    return _unpickle(f, path, load_storage)


def _read_safetensors(path, f, size):
    (hlen,) = struct.unpack("<Q", f.read(8))
    if hlen > size - 8:
        raise _err(path, f"safetensors header claims {hlen} bytes but the file has only "
                   f"{size - 8} after the length field (truncated)", "re-download it")
    try:
        header = json.loads(f.read(hlen))
    except ValueError as e:
        raise _err(path, f"safetensors header is not valid JSON ({e})", "re-download it")
    if not isinstance(header, dict):
        raise _err(path, "safetensors header is not a JSON object", "re-download it")
    header.pop("__metadata__", None)
    blob = f.read()
    out = collections.OrderedDict()
    for name, info in header.items():
        try:
            dtype = _SAFETENSORS_DTYPE[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise _err(path, f"tensor {name!r}: bad or unsupported header entry {info!r} "
                       f"({e!r})", "re-save it with safetensors (F64/F32/F16/BF16/ints/BOOL)")
        itemsize = np.dtype(_NP_CODE[dtype]).itemsize
        if not 0 <= begin <= end <= len(blob) or end - begin != math.prod(shape) * itemsize:
            raise _err(path, f"tensor {name!r}: header offsets {begin}..{end} do not match "
                       f"shape {shape} or the {len(blob)} data bytes (truncated or corrupt)",
                       "re-download it")
        strides = [math.prod(shape[i + 1:]) for i in range(len(shape))]
        out[name] = _to_array(memoryview(blob)[begin:end], 0, shape, strides, dtype, "<", path)
    return out


def read_checkpoint(path):
    """Return the object saved in `path`, with every tensor as a numpy array.

    The format (torch zip, torch legacy pickle, safetensors) is detected from
    the first bytes, not the extension. Any failure raises CheckpointError.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _err(path, "no such file", "check the path (and the working directory)")
    if os.path.isdir(path):
        raise _err(path, "it is a directory, not a file", "pass the checkpoint file itself")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(512)
            f.seek(0)
            if not head:
                raise _err(path, "the file is empty", "re-download or re-save it")
            if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                return _read_zip(path)
            if head[257:262] == b"ustar":
                raise _err(path, "it uses the pre-0.4 tar checkpoint format, which is not "
                           "supported", f"load it with torch and {_RESAVE}")
            if head[:1] == b"\x80":
                return _read_legacy(path, f, size)
            if len(head) >= 9 and head[8:9] == b"{":
                return _read_safetensors(path, f, size)
            raise _err(path, f"unrecognised format (first bytes {head[:8]!r}); expected a "
                       "torch.save zip or legacy file or .safetensors", "pass such a file")
    except CheckpointError:
        raise
    except OSError as e:  # permissions, I/O errors: not the file's content
        raise _err(path, f"the file cannot be read ({e})", "check its permissions and disk") from e
    except Exception as e:  # last resort: never leak a bare zipfile/pickle/struct error
        raise _err(path, f"it is truncated or corrupt ({type(e).__name__}: {e})",
                   "re-download it") from e


# ------------------------------------------------------ state dict unwrap
# Wrapper keys tried in this order: plain weights before EMA weights.
_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "net")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel, torch.compile


def _has_arrays(obj):
    return (isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj)
            and any(isinstance(v, np.ndarray) for v in obj.values()))


def load_state_dict(path):
    """Read `path` and return its state dict as OrderedDict[str, np.ndarray].

    Wrappers are unwrapped by trying the keys in _WRAPPER_KEYS order; a
    leading 'module.' / '_orig_mod.' shared by all keys is stripped.
    """
    obj = read_checkpoint(path)
    sd = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj, dict) and _has_arrays(obj.get(k))),
              obj if _has_arrays(obj) else None)
    if sd is None:
        found = (f"top-level keys {list(obj)[:20]}" if isinstance(obj, dict)
                 else f"a top-level {type(obj).__name__}")
        raise _err(os.fspath(path), f"nothing looks like a state dict ({found}; expected "
                   f"tensors at the top or under one of {list(_WRAPPER_KEYS)})",
                   f"load it with torch and {_RESAVE}")
    out = collections.OrderedDict()
    for key, value in sd.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = np.asarray(value)  # e.g. num_batches_tracked stored as a Python int
        if not isinstance(value, np.ndarray):
            raise _err(os.fspath(path), f"state dict entry {key!r} is a "
                       f"{type(value).__name__}, not a tensor", f"load it with torch and {_RESAVE}")
        out[key] = value
    stripped = True
    while stripped:
        stripped = False
        for prefix in _PREFIXES:
            if out and all(k.startswith(prefix) for k in out):
                out = collections.OrderedDict((k[len(prefix):], v) for k, v in out.items())
                stripped = True
    return out

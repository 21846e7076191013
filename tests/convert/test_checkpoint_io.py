"""Tests for rexnet_gluon.convert.checkpoint_io (torch is used here only to write files)."""
import argparse
import collections
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from rexnet_gluon.convert.checkpoint_io import CheckpointError, load_state_dict, read_checkpoint

from helpers import REPO  # noqa: E402


def make_state_dict():
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(40, generator=g)
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(4, 3, 3, 3, generator=g)
    sd["fc.weight"] = torch.randn(5, 6, generator=g, dtype=torch.float64)
    sd["half"] = torch.randn(7, generator=g).half()
    sd["bf16"] = torch.randn(2, 5, generator=g).bfloat16()
    sd["idx"] = torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4)
    sd["bn.num_batches_tracked"] = torch.tensor(123)
    sd["transposed"] = torch.randn(3, 4, generator=g).t()  # non-contiguous view
    sd["shared_a"] = shared[3:15].view(3, 4)  # two views of one storage,
    sd["shared_b"] = shared[20:26]  # at different offsets
    return sd


def to_numpy(t):
    t = t.detach()
    return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()


def assert_same(arrays, tensors):
    assert list(arrays) == list(tensors)
    for key, t in tensors.items():
        a, want = arrays[key], to_numpy(t)
        assert isinstance(a, np.ndarray), key
        assert a.dtype == want.dtype and a.shape == want.shape, key
        assert a.flags.c_contiguous and a.flags.writeable, key
        np.testing.assert_array_equal(a, want, err_msg=key)


def save(obj, path, fmt):
    if fmt == "zip":
        torch.save(obj, path)
    elif fmt == "legacy":
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:
        from safetensors.torch import save_file
        save_file({k: v.contiguous().clone() for k, v in obj.items()}, str(path))
    return path


@pytest.fixture
def sd():
    return make_state_dict()


def test_fixture_really_has_views_and_shared_storage(sd):
    # guard: the format tests below only mean something if these hold
    assert not sd["transposed"].is_contiguous()
    assert sd["shared_a"].untyped_storage().data_ptr() == sd["shared_b"].untyped_storage().data_ptr()
    assert sd["shared_a"].storage_offset() == 3 and sd["shared_b"].storage_offset() == 20


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_torch_formats_roundtrip_exactly(tmp_path, sd, fmt):
    path = save(sd, tmp_path / "w.bin", fmt)  # extension says nothing about the format
    out = read_checkpoint(path)
    assert isinstance(out, collections.OrderedDict)
    assert_same(out, sd)
    assert out["bf16"].dtype == np.float32 and out["half"].dtype == np.float16
    assert out["bn.num_batches_tracked"].shape == () and out["bn.num_batches_tracked"] == 123
    # shared views come back as independent arrays with the right slices
    np.testing.assert_array_equal(out["shared_b"], to_numpy(sd["shared_b"]))
    out["shared_a"][0, 0] = 1e6
    assert out["shared_b"][0] != 1e6


def test_zip_stores_shared_storage_once(tmp_path, sd):
    path = save(sd, tmp_path / "w.pt", "zip")
    records = [n for n in zipfile.ZipFile(path).namelist() if "/data/" in n]
    assert len(records) == len(sd) - 1  # shared_a/shared_b use one record


def test_v3_dtype_and_parameter(tmp_path):
    obj = {"u16": torch.tensor([1, 2, 65535], dtype=torch.uint16),
           "param": torch.nn.Parameter(torch.linspace(0, 1, 5)),
           "bool": torch.tensor([True, False, True])}
    for fmt in ("zip", "legacy"):
        out = read_checkpoint(save(obj, tmp_path / f"{fmt}.pt", fmt))
        assert out["u16"].dtype == np.uint16 and out["u16"].tolist() == [1, 2, 65535]
        np.testing.assert_array_equal(out["param"], np.linspace(0, 1, 5, dtype=np.float32))
        assert out["bool"].dtype == np.bool_ and out["bool"].tolist() == [True, False, True]


def test_safetensors_torch_and_numpy(tmp_path, sd):
    path = save(sd, tmp_path / "model.pth", "safetensors")  # detected by content
    out = read_checkpoint(path)
    assert set(out) == set(sd)  # safetensors chooses its own key order
    assert_same(out, collections.OrderedDict((k, sd[k]) for k in out))

    from safetensors.numpy import save_file
    arrays = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), "b": np.array([1.5], np.float64),
              "c": np.array([True, False]), "d": np.arange(4, dtype=np.uint8),
              "e": np.array([-1, 2], np.int16), "f": np.array([-7], np.int8)}
    save_file(arrays, str(tmp_path / "np.safetensors"), metadata={"format": "np"})
    out = read_checkpoint(tmp_path / "np.safetensors")
    assert set(out) == set(arrays)
    for k, v in arrays.items():
        assert out[k].dtype == v.dtype and np.array_equal(out[k], v), k


def test_big_endian_zip_record(tmp_path):
    sd = {"w": torch.randn(3, 5), "b": torch.arange(4, dtype=torch.float32)}
    src = save(sd, tmp_path / "le.pt", "zip")
    dst = tmp_path / "be.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("/byteorder"):
                data = b"big"
            elif "/data/" in name:
                data = np.frombuffer(data, "<f4").astype(">f4").tobytes()
            zout.writestr(name, data)
    out = read_checkpoint(dst)
    assert out["w"].dtype == np.float32 and out["w"].dtype.isnative
    assert_same(out, sd)


def test_wrapped_checkpoints_and_prefixes(tmp_path, sd):
    ckpt = {"model": sd, "args": argparse.Namespace(lr=0.1, arch="rexnet"), "epoch": 3,
            "tag": b"\x00\xffab", "seen": {1, 2}}
    path = save(ckpt, tmp_path / "train.pth.tar", "zip")
    raw = read_checkpoint(path)
    assert raw["epoch"] == 3 and raw["args"].lr == 0.1 and raw["args"].arch == "rexnet"
    assert type(raw["args"]) is not argparse.Namespace  # a harmless stand-in
    assert raw["tag"] == b"\x00\xffab" and raw["seen"] == {1, 2}
    assert_same(load_state_dict(path), sd)

    assert_same(load_state_dict(save({"state_dict": sd}, tmp_path / "s.pt", "legacy")), sd)

    prefixed = collections.OrderedDict(("module._orig_mod." + k, v) for k, v in sd.items())
    assert_same(load_state_dict(save({"net": prefixed}, tmp_path / "p.pt", "zip")), sd)

    # a prefix shared by only some keys is kept
    mixed = {"module.a": torch.ones(1), "b": torch.zeros(1)}
    assert list(load_state_dict(save(mixed, tmp_path / "m.pt", "zip"))) == ["module.a", "b"]


def test_wrapper_preference_order(tmp_path):
    a, b = {"w": torch.ones(2)}, {"w": torch.zeros(2)}
    out = load_state_dict(save({"state_dict_ema": b, "state_dict": a}, tmp_path / "1.pt", "zip"))
    assert out["w"].tolist() == [1.0, 1.0]
    out = load_state_dict(save({"model_ema": b, "model": a}, tmp_path / "2.pt", "zip"))
    assert out["w"].tolist() == [1.0, 1.0]
    # an empty 'state_dict' is skipped in favour of one that holds tensors
    out = load_state_dict(save({"state_dict": {}, "model": b}, tmp_path / "3.pt", "zip"))
    assert out["w"].tolist() == [0.0, 0.0]


def test_scalar_and_bad_values_in_state_dict(tmp_path):
    out = load_state_dict(save({"w": torch.ones(2), "bn.num_batches_tracked": 5}, tmp_path / "a.pt", "zip"))
    assert isinstance(out["bn.num_batches_tracked"], np.ndarray)
    assert out["bn.num_batches_tracked"].shape == () and int(out["bn.num_batches_tracked"]) == 5
    path = save({"w": torch.ones(2), "name": "abc"}, tmp_path / "b.pt", "zip")
    with pytest.raises(CheckpointError, match=r"'name' is a str"):
        load_state_dict(path)


def test_not_a_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="top-level list"):
        load_state_dict(save(["conv.weight", "fc.bias"], tmp_path / "l.pt", "zip"))
    with pytest.raises(CheckpointError, match=r"\['epoch', 'arch'\]"):
        load_state_dict(save({"epoch": 3, "arch": "rexnet"}, tmp_path / "d.pt", "zip"))


class Evil:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, fmt):
    sentinel = tmp_path / "pwned"
    path = save({"w": torch.ones(2), "x": Evil(sentinel)}, tmp_path / "evil.pt", fmt)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert f"`{os.system.__module__}.system`" in msg and "refusing" in msg and str(path) in msg
    assert not sentinel.exists()
    # prove the file really is malicious: an unrestricted torch.load runs the command
    torch.load(path, weights_only=False)
    assert sentinel.exists()


def test_whole_module_pickle_is_refused(tmp_path):
    path = save(torch.nn.Linear(2, 3), tmp_path / "m.pt", "zip")
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        read_checkpoint(path)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "safetensors"])
def test_truncated_files(tmp_path, sd, fmt):
    full = save(sd, tmp_path / "full", fmt).read_bytes()
    cuts = sorted({10, 40, 100, len(full) // 3, len(full) // 2, len(full) - 64, len(full) - 1})
    for cut in cuts:
        path = tmp_path / f"cut{cut}"
        path.write_bytes(full[:cut])
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        msg = str(info.value)
        assert str(path) in msg and "re-download" in msg, (cut, msg)
        assert "truncat" in msg or "shorter" in msg, (cut, msg)


def test_zip_storage_shorter_than_tensor(tmp_path):
    src = save({"w": torch.arange(10.0)}, tmp_path / "ok.pt", "zip")
    dst = tmp_path / "short.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data[:12] if "/data/" in name else data)
    with pytest.raises(CheckpointError, match="storage holds 3 float32 elements but a tensor needs 10"):
        read_checkpoint(dst)


def test_lying_safetensors_headers(tmp_path):
    def write(name, header, data=b"\0" * 16, hlen=None):
        blob = json.dumps(header).encode()
        (tmp_path / name).write_bytes(struct.pack("<Q", hlen or len(blob)) + blob + data)
        return tmp_path / name

    ok = {"x": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    assert read_checkpoint(write("ok", ok))["x"].shape == (2, 2)
    cases = {
        "huge_len": (ok, b"\0" * 16, 10**9, "header claims"),
        "past_end": ({"x": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}, b"\0" * 16, None, "do not match"),
        "size_mismatch": ({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, None, "do not match"),
        "bad_dtype": ({"x": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 16, None, "unsupported"),
    }
    for name, (header, data, hlen, match) in cases.items():
        with pytest.raises(CheckpointError, match=match):
            read_checkpoint(write(name, header, data, hlen))
    (tmp_path / "badjson").write_bytes(struct.pack("<Q", 5) + b"{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_checkpoint(tmp_path / "badjson")


def test_empty_missing_directory_and_unknown(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_checkpoint(tmp_path / "empty.pt")
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="no such file.*check the path") as info:
        load_state_dict(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(CheckpointError, match="directory"):
        read_checkpoint(tmp_path)
    (tmp_path / "text.pt").write_text("hello world, not a checkpoint")
    with pytest.raises(CheckpointError, match="unrecognised format"):
        read_checkpoint(tmp_path / "text.pt")


def test_other_pickles_zips_and_tars(tmp_path):
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="magic number"):
        read_checkpoint(tmp_path / "plain.pkl")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(CheckpointError, match="data.pkl"):
        read_checkpoint(tmp_path / "other.zip")
    (tmp_path / "pickle").write_bytes(b"x")
    with tarfile.open(tmp_path / "old.tar", "w") as tf:
        tf.add(tmp_path / "pickle", arcname="pickle")
    with pytest.raises(CheckpointError, match="pre-0.4 tar.*not supported"):
        read_checkpoint(tmp_path / "old.tar")


def test_import_and_read_with_torch_blocked(tmp_path, sd):
    for fmt in ("zip", "legacy", "safetensors"):
        save(sd, tmp_path / fmt, fmt)
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "from rexnet_gluon.convert.checkpoint_io import read_checkpoint\n"
        f"for fmt in ('zip', 'legacy', 'safetensors'):\n"
        f"    out = read_checkpoint({str(tmp_path)!r} + '/' + fmt)\n"
        "    print(fmt, len(out), float(out['conv.weight'].sum()))\n"
        "assert sys.modules['torch'] is None and 'safetensors' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    want = float(sd["conv.weight"].numpy().sum())
    lines = res.stdout.split("\n")
    for fmt, line in zip(("zip", "legacy", "safetensors"), lines):
        name, n, total = line.split()
        assert name == fmt and int(n) == len(sd) and float(total) == want

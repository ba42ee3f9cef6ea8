#!/usr/bin/env python3
"""Checks an InvertNN checkpoint (a safetensors file) with only the standard library and numpy.

Usage: check_checkpoint.py MODEL.safetensors [EXPECTED.json]

Reads the 8-byte little-endian header length, the JSON header and the data section; checks that
every tensor has dtype F32 or F64, a shape matching its data offsets, that the tensors tile the
data section, that all values are finite, and that __metadata__ holds the InvertNN keys with valid
JSON (architecture, base, preprocessing, dataset). With EXPECTED.json (a list of
{"name", "shape", "dtype"}), also checks the tensor names, shapes and dtypes against it.

Prints one JSON object on stdout: {"ok": true, "tensors": {name: {"dtype", "shape", "sum"}},
"metadata_keys": [...]} and exits 0, or prints the problem on stderr and exits 1.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
REQUIRED_METADATA = ["format", "format_version", "architecture", "base", "preprocessing", "dtype"]


def fail(message):
    print(f"check_checkpoint: {message}", file=sys.stderr)
    sys.exit(1)


def main(argv):
    if len(argv) not in (2, 3):
        fail("usage: check_checkpoint.py MODEL.safetensors [EXPECTED.json]")
    with open(argv[1], "rb") as handle:
        blob = handle.read()
    if len(blob) < 8:
        fail("file shorter than the 8-byte header length")
    (length,) = struct.unpack("<Q", blob[:8])
    if 8 + length > len(blob):
        fail(f"header length {length} exceeds the file size {len(blob)}")
    if (8 + length) % 8 != 0:
        fail("the data section does not start at a multiple of 8 bytes")
    header = json.loads(blob[8:8 + length].decode("utf-8"))
    data = blob[8 + length:]
    metadata = header.pop("__metadata__", {})
    for key in REQUIRED_METADATA:
        if key not in metadata:
            fail(f"__metadata__ lacks {key}")
    if metadata["format"] != "invertnn":
        fail(f"format is {metadata['format']!r}")
    for key in ("architecture", "base", "preprocessing", "dataset"):
        if key in metadata:
            json.loads(metadata[key])
    architecture = json.loads(metadata["architecture"])
    if architecture.get("type") != "Sequential":
        fail("the architecture's root is not a Sequential")

    tensors = {}
    spans = []
    for name, entry in header.items():
        dtype = entry["dtype"]
        if dtype not in DTYPES:
            fail(f"tensor {name} has dtype {dtype}")
        if dtype != metadata["dtype"]:
            fail(f"tensor {name} has dtype {dtype} but the model is {metadata['dtype']}")
        shape = entry["shape"]
        begin, end = entry["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * DTYPES[dtype].itemsize:
            fail(f"tensor {name}: offsets {begin}..{end} do not match shape {shape}")
        values = np.frombuffer(data[begin:end], dtype=DTYPES[dtype]).reshape(shape)
        if not np.all(np.isfinite(values)):
            fail(f"tensor {name} has non-finite values")
        spans.append((begin, end))
        tensors[name] = {"dtype": dtype, "shape": list(shape), "sum": float(values.astype(np.float64).sum())}
    cursor = 0
    for begin, end in sorted(spans):
        if begin != cursor:
            fail("tensors do not tile the data section")
        cursor = end
    if cursor != len(data):
        fail(f"tensors cover {cursor} bytes of a {len(data)}-byte data section")

    if len(argv) == 3:
        with open(argv[2]) as handle:
            expected = json.load(handle)
        names = [e["name"] for e in expected]
        if sorted(names) != sorted(tensors):
            missing = sorted(set(names) - set(tensors))
            extra = sorted(set(tensors) - set(names))
            fail(f"tensor names differ: missing {missing}, unexpected {extra}")
        for e in expected:
            got = tensors[e["name"]]
            if got["shape"] != e["shape"] or got["dtype"] != e["dtype"]:
                fail(f"tensor {e['name']}: expected {e['dtype']} {e['shape']}, got {got['dtype']} {got['shape']}")

    print(json.dumps({"ok": True, "tensors": tensors, "metadata_keys": sorted(metadata)}))


if __name__ == "__main__":
    main(sys.argv)

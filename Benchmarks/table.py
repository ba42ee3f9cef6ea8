#!/usr/bin/env python3
"""Turns `invertnn-bench --json` output into the Markdown table of Benchmarks/PERFORMANCE.md.

Usage: python3 Benchmarks/table.py results.json > table.md
Prints the BLAS core, one table row per record, then a count of target passes and failures.
"""
import json
import sys


def main(path):
    with open(path) as f:
        records = json.load(f)
    if not records:
        sys.exit("no records in " + path)
    print(f"BLAS core: {records[0]['blas_core']}, threads: 1\n")
    print("| suite | case | precision | B | n | m | mode | ms | reference ms | ratio | GFLOP/s | samples/s | target |")
    print("| --- | --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    passed = failed = 0
    for r in records:
        note = r.get("note") or ""
        if r["suite"] == "gemm" and r["features"] >= 256 and "pass" not in note and "FAIL" not in note:
            # Records written before the gemm suite put its verdict in the note: ≥ 0.95 of C's
            # GFLOP/s is a time ratio ≤ 1/0.95.
            note = "target ≤ 1.053: " + ("pass" if r["ratio"] <= 1 / 0.95 else "FAIL")
        target = ""
        if "target" in note and ("pass" in note or "FAIL" in note):
            target = note[note.index("target"):]
            if target.endswith("pass"):
                passed += 1
            elif "FAIL" in target:
                failed += 1
        m = r.get("reflectors")
        print("| {suite} | {case} | {precision} | {batch} | {features} | {m} | {mode} | {ms:.2f} | {ref:.2f} | "
              "{ratio:.3f} | {gflops:.1f} | {sps:.0f} | {target} |".format(
                  suite=r["suite"], case=r["case"], precision=r["precision"], batch=r["batch"],
                  features=r["features"], m="-" if m is None else m, mode=r["mode"], ms=r["median_ms"],
                  ref=r["reference_ms"], ratio=r["ratio"], gflops=r["gflops"], sps=r["samples_per_second"],
                  target=target))
    print(f"\nTargets in this run: {passed} pass, {failed} FAIL.")
    # Issue 5: in every case the Float ratio is at most 1.2 times the Double ratio.
    pairs = {}
    for r in records:
        key = (r["suite"], r["case"], r["batch"], r["features"], r.get("reflectors"), r["mode"])
        pairs.setdefault(key, {})[r["precision"]] = r["ratio"]
    both = [(k, v) for k, v in pairs.items() if "float" in v and "double" in v and k[0] not in ("gemm", "memory")]
    misses = [(k, v["float"] / v["double"]) for k, v in both if v["float"] > 1.2 * v["double"]]
    print(f"Float ratio ≤ 1.2 × Double ratio: {len(both) - len(misses)} of {len(both)} cases pass.")
    for (suite, case, batch, features, m, mode), q in misses:
        print(f"- miss: {suite} {case} B={batch} n={features} m={m} {mode}: Float/Double = {q:.2f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/dev/stdin")

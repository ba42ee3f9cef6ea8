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


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/dev/stdin")

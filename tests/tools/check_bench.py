#!/usr/bin/env python3
"""Runs `ipckit bench --quick` and checks its JSON (the schema of bench/harness.hpp) and
its SVG chart (well-formed XML, one bar group per workload). Standard library only.

    check_bench.py --ipckit BIN --out DIR --only GLOB (--expect-python | --no-python)
"""

import argparse
import fnmatch
import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

MACHINE_KEYS = {"cpu_model": str, "cores": int, "kernel": str, "compiler": str, "build_type": str,
                "date": str, "command_line": str}
SUMMARY_KEYS = ("median", "min", "max", "reps")
SVG = "{http://www.w3.org/2000/svg}"


def fail(message):
    print(f"check_bench: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check_summary(where, summary, required):
    if summary is None:
        if required:
            fail(f"{where} is null")
        return
    if not isinstance(summary, dict) or set(summary) != set(SUMMARY_KEYS):
        fail(f"{where} should be an object with {SUMMARY_KEYS}: {summary!r}")
    for key in ("median", "min", "max"):
        value = summary[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            fail(f"{where}.{key} is not a positive number: {value!r}")
    if not summary["min"] <= summary["median"] <= summary["max"]:
        fail(f"{where}: min <= median <= max does not hold: {summary!r}")
    if not isinstance(summary["reps"], int) or summary["reps"] < 1:
        fail(f"{where}.reps is not a positive integer: {summary['reps']!r}")


def check_json(path, only, expect_python):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    if set(doc) != {"machine", "results"}:
        fail(f"top-level keys are {sorted(doc)}, expected machine and results")
    machine = doc["machine"]
    for key, kind in MACHINE_KEYS.items():
        if not isinstance(machine.get(key), kind):
            fail(f"machine.{key} should be a {kind.__name__}: {machine.get(key)!r}")
    python = machine.get("python_version", "missing")
    if expect_python and not isinstance(python, str):
        fail(f"machine.python_version should be a string: {python!r}")
    if not expect_python and python is not None:
        fail(f"machine.python_version should be null with --no-python: {python!r}")

    results = doc["results"]
    if not isinstance(results, list) or not results:
        fail("results is empty")
    for r in results:
        name = r.get("workload")
        if not isinstance(name, str) or not any(fnmatch.fnmatchcase(name, p) for p in only.split(",")):
            fail(f"unexpected workload {name!r} for --only {only}")
        if not isinstance(r.get("unit"), str) or not r["unit"]:
            fail(f"{name}: unit missing")
        if not isinstance(r.get("lower_is_better"), bool):
            fail(f"{name}: lower_is_better is not a boolean")
        check_summary(f"{name}.ipckit", r.get("ipckit"), required=True)
        check_summary(f"{name}.floor", r.get("floor"), required=True)
        if "python" not in r:
            fail(f"{name}: the python key is missing")
        if expect_python:
            check_summary(f"{name}.python", r["python"], required=True)
        elif r["python"] is not None:
            fail(f"{name}.python should be null with --no-python")
    return [r["workload"] for r in results]


def check_svg(path, workloads):
    root = ET.parse(path).getroot()  # raises on malformed XML
    if root.tag != SVG + "svg":
        fail(f"the root element is {root.tag}, not svg")
    texts = [t.text or "" for t in root.iter(SVG + "text")]
    for name in workloads:
        if name not in texts:
            fail(f"the chart has no label for {name}")
    if len(list(root.iter(SVG + "rect"))) < 2 * len(workloads):
        fail("the chart has fewer bars than expected")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ipckit", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", required=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--expect-python", action="store_true")
    group.add_argument("--no-python", action="store_true")
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, "b.json")
    svg_path = os.path.join(args.out, "b.svg")
    for path in (json_path, svg_path):
        if os.path.exists(path):
            os.remove(path)
    command = [args.ipckit, "bench", "--quick", "--only", args.only, "--json", json_path, "--chart", svg_path]
    if args.no_python:
        command.append("--no-python")
    print("check_bench: running", " ".join(command), flush=True)
    completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        fail(f"ipckit bench exited with {completed.returncode}")
    workloads = check_json(json_path, args.only, args.expect_python)
    check_svg(svg_path, workloads)
    print(f"check_bench: OK: {', '.join(workloads)}")


if __name__ == "__main__":
    main()

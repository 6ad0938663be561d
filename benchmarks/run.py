"""Runs the whole benchmark suite and prints (and writes) a summary table.

    python -m benchmarks.run --quick    # smoke run, < 10 minutes here; prints only
    python -m benchmarks.run            # full suite, < 90 minutes here

Each benchmark runs in its own process (`python -m benchmarks.<name>`), writes
its own section of docs/benchmarks.md, and leaves a summary in
`benchmarks/.cache/summaries/`; this script collects them into the "Summary"
section. The quick run is a smoke test (one workload per benchmark, the -5 floor only,
small subsets, small baselines when no full one is cached): it prints its
table and leaves docs/benchmarks.md alone.
"""

import argparse
import json
import re
import subprocess
import sys
import time

from benchmarks import _common, _workloads


def plan(quick):
    q = ["--quick", "--no-docs"] if quick else []
    return [  # the benchmarks that train baselines first
        ("accuracy_requirement", ["accuracy_requirement"] + q + (["--only", "cifar10"] if quick else [])),
        ("criteria", ["criteria"] + q + (["--only", "mnist"] if quick else [])),
        ("torch_pruning_compare", ["torch_pruning_compare"] + (q or ["--kt-scoring", "default"])),
        ("torch_pruning_macs", ["torch_pruning_macs"] + q),
        ("round_to", ["round_to"] + q),
        ("inference", ["inference"] + q),
        ("export", ["export"] + q),
        ("overhead", ["overhead"] + q),
        ("strip_speed", ["strip_speed"] + (["--repeats", "1", "--models", "ResNet50", "--no-write"] if quick else [])),
    ]


def _parse_foreign(name, out):
    """Summary rows of the benchmarks that do not write one themselves."""
    rows = []
    if name == "overhead":
        m = re.search(r"^ratio\s+([0-9.]+)", out, re.MULTILINE)
        if m:
            rows.append({"benchmark": name, "what": "TaylorPrunableModel.fit step / fit step of the same layers (ResNet-20)",
                         "result": m.group(1), "target": "<= 1.10", "met": "yes" if float(m.group(1)) <= 1.10 else "no"})
        m = re.search(r"^vs keras ratio\s+([0-9.]+)", out, re.MULTILINE)
        if m:
            rows.append({"benchmark": name, "what": "TaylorPrunableModel.fit step / plain Keras fit step (ResNet-20)",
                         "result": m.group(1), "target": "", "met": ""})
    if name == "strip_speed":
        for model, ratio in re.findall(r"^(\w+): strip .*? ratio ([0-9.]+)", out, re.MULTILINE):
            rows.append({"benchmark": name, "what": f"strip_pruning / clone_model, {model}",
                         "result": ratio, "target": "<= 2", "met": "yes" if float(ratio) <= 2 else "no"})
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks")
    args = parser.parse_args(argv)
    if not _common.BENCHMARKS_MD.exists() or "<!-- section:summary -->" not in _common.BENCHMARKS_MD.read_text():
        _common.write_section("summary", "## Summary\n\n(filled in by `python -m benchmarks.run`)")
    start = time.perf_counter()
    results = []
    for name, cmd in plan(args.quick):
        if args.only and name not in args.only:
            continue
        summary_file = _workloads.CACHE / "summaries" / f"{name}.json"
        if summary_file.exists():
            summary_file.unlink()
        print(f"=== python -m benchmarks.{' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", f"benchmarks.{cmd[0]}"] + cmd[1:], cwd=_common.REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in proc.stdout:
            if "oneDNN custom operations" in line or "absl::InitializeLog" in line:
                continue
            lines.append(line)
            print(line, end="", flush=True)
        code = proc.wait()
        seconds = time.perf_counter() - t0
        rows = _parse_foreign(name, "".join(lines))
        if summary_file.exists():
            rows += json.loads(summary_file.read_text())["rows"]
        if code != 0:
            rows.append({"benchmark": name, "what": "run", "result": f"FAILED (exit {code})", "target": "", "met": "no"})
        results.append((name, " ".join(cmd), seconds, rows))
        print(f"=== {name}: {seconds:.0f} s (exit {code})", flush=True)
    total = time.perf_counter() - start
    header = ["benchmark", "measured", "result", "target", "met"]
    table_rows = [[r["benchmark"], r["what"], r["result"], r["target"], r["met"]]
                  for _, _, _, rows in results for r in rows]
    times = [[f"`python -m benchmarks.{cmd}`", f"{s:.0f}"] for _, cmd, s, _ in results]
    table = _common.markdown_table(header, table_rows)
    print()
    print(table)
    print()
    print(_common.markdown_table(["command", "seconds"], times))
    print(f"\nWhole suite ({'quick' if args.quick else 'full'}): {total:.0f} s = {total / 60:.1f} min")
    if not args.only and not args.quick:
        text = "\n".join([
            "## Summary",
            "",
            *_common.provenance("quick" if args.quick else "full"),
            f"Whole suite: {total / 60:.1f} minutes (budget: {'10' if args.quick else '90'}). "
            "The sections below give every figure with its own command.",
            "",
            table,
            "",
            _common.markdown_table(["command", "seconds"], times),
        ])
        _common.write_section("summary", text)
    return results


if __name__ == "__main__":
    main()

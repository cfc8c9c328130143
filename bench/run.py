"""Run the benchmarks B1-B12, write their JSON results and regenerate the report.

    python bench/run.py            # full: bench/results/*.json -> BENCHMARKS.md
    python bench/run.py --quick    # short: bench/results/quick/*.json -> its BENCHMARKS.md
    python bench/run.py --only B3,B5

On a host with a GPU the results go to bench/results/gpu/ (quick: results/quick/gpu/)
and the report shows them in a section of their own after the CPU figures.

Timing-sensitive benchmarks run first (B3, B4, B6, B5), then B2 (time-limited
searches), then B1, whose budget is counted in epochs, not seconds.
`make bench` and `make bench-quick` call this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import b1_search
import b2_quality
import b3_overhead
import b4_backends
import b5_memory
import b6_parallel
import b7_storage
import b8_first_error
import b9_panel
import b10_fused
import b11_generation
import b12_objectives
import report
from common import HERE, ROOT, first_gpu

BENCHMARKS = {
    "B8": ("b8_first_error", b8_first_error.run),
    "B3": ("b3_overhead", b3_overhead.run),
    "B4": ("b4_backends", b4_backends.run),
    "B6": ("b6_parallel", b6_parallel.run),
    "B7": ("b7_storage", b7_storage.run),
    "B5": ("b5_memory", b5_memory.run),
    "B2": ("b2_quality", b2_quality.run),
    "B1": ("b1_search", b1_search.run),
    "B9": ("b9_panel", b9_panel.run),
    "B10": ("b10_fused", b10_fused.run),
    "B11": ("b11_generation", b11_generation.run),
    "B12": ("b12_objectives", b12_objectives.run),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (at most 15 minutes)")
    parser.add_argument("--only", help="comma-separated subset, e.g. B3,B5")
    args = parser.parse_args()
    chosen = [b.strip().upper() for b in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = [b for b in chosen if b not in BENCHMARKS]
    if unknown:
        print(
            f"bench: unknown benchmark {unknown[0]!r}; "
            f"choose from {', '.join(sorted(BENCHMARKS))}.",
            file=sys.stderr,
        )
        return 2
    cpu_results = HERE / "results" / ("quick" if args.quick else "")
    # A GPU host's figures go beside the CPU ones, into their own section of the report.
    results = cpu_results / "gpu" if first_gpu() else cpu_results
    results.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for name in (b for b in BENCHMARKS if b in chosen):
        stem, bench = BENCHMARKS[name]
        start = time.perf_counter()
        try:
            result = bench(args.quick)
        except Exception as e:  # one broken benchmark must not cost the others' results
            print(f"{name} failed: {e}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        result["wall_s"] = round(time.perf_counter() - start, 1)
        result["command"] = "make bench-quick" if args.quick else "make bench"
        (results / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name} done in {result['wall_s']:.0f} s -> {results / stem}.json", flush=True)
    out = cpu_results / "BENCHMARKS.md" if args.quick else ROOT / "BENCHMARKS.md"
    report.write(cpu_results, out)
    print(f"wrote {out}")
    if failed:
        print(f"failed: {', '.join(failed)} (their earlier results, if any, were kept)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

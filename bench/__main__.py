"""``python -m bench`` (``make bench``): run the benchmarks, write ``bench/results/<name>.json``
and regenerate the tables in ``bench/README.md``.

    python -m bench                  # everything (webhook, fleet, answers, k8s, scheduler,
                                     # then ai_bench.py)
    python -m bench --quick          # CI smoke: smaller and shorter, AI benchmark skipped
    python -m bench --only webhook   # one benchmark (repeatable)
    python -m bench --tables         # only regenerate the README from the JSON files present

Exit status: 1 when a benchmark crashed, or with ``--strict`` when a goal was missed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from bench import answer_eval, fleet, k8s_scale, report, scheduler_bench, webhook
from bench.common import REPO, RESULTS_DIR, write_result

BENCHES: dict[str, Callable[[bool], dict[str, Any]]] = {
    "webhook": webhook.run,
    "fleet": fleet.run,
    "answers": answer_eval.run,
    "k8s": k8s_scale.run,  # orchestrator cost of 100 / 1,000 bots on the Kubernetes stand-in
    "scheduler": scheduler_bench.run,  # 10,000 jobs in one bot: idle CPU, 1,000 due at once
}
ALL = (*BENCHES, "ai")


def run_ai() -> bool:
    """Run ``bench/ai_bench.py`` (it writes ``bench/results/ai.json`` itself)."""
    print("== ai (bench/ai_bench.py)", flush=True)
    res = subprocess.run([sys.executable, str(REPO / "bench" / "ai_bench.py")], cwd=REPO,
                         check=False)
    return res.returncode == 0


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, write, render; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smaller and shorter runs for CI; skips the AI benchmark")
    parser.add_argument("--only", action="append", choices=ALL, metavar="NAME",
                        help=f"run only this benchmark ({', '.join(ALL)}); repeatable")
    parser.add_argument("--tables", action="store_true",
                        help="regenerate bench/README.md from the JSON files; run nothing")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)

    crashed: list[str] = []
    missed: list[str] = []
    if not args.tables:
        names = args.only or [n for n in ALL if not (args.quick and n == "ai")]
        for name in names:
            if name == "ai":
                if not run_ai():
                    crashed.append("ai")
                continue
            print(f"== {name}{' (quick)' if args.quick else ''}", flush=True)
            started = time.monotonic()
            try:
                body = BENCHES[name](args.quick)
            except Exception:
                traceback.print_exc()
                body = {"error": traceback.format_exc(), "goals": []}
                crashed.append(name)
            path = write_result(name, body, quick=args.quick, started=started)
            for g in body.get("goals", []):
                mark = "pass" if g["passed"] else "MISSED"
                print(f"   {mark:6} {g['name']}: {g['value']} (goal {g['op']} {g['target']} "
                      f"{g['unit']})", flush=True)
                if not g["passed"]:
                    missed.append(f"{name}: {g['name']}")
            print(f"   wrote {path.relative_to(REPO)}", flush=True)
    results = report.load_results(RESULTS_DIR)
    report.update_readme(results)
    print(f"tables in {report.README.relative_to(REPO)} regenerated from "
          f"{', '.join(sorted(results)) or 'no results'}", flush=True)
    if crashed:
        print(f"crashed: {', '.join(crashed)}", flush=True)
    if missed:
        print("goals missed:\n  " + "\n  ".join(missed), flush=True)
    return 1 if crashed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())

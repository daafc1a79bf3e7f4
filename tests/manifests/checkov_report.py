#!/usr/bin/env python3
"""Summarise `checkov -o json` output: one line per failed (or annotation-
skipped) check naming file, lines, object and check; exit 1 on any failed
check or parsing error, or when checkov scanned nothing although
--min-resources says it should have.

Usage: checkov_report.py [--min-resources N] CHECKOV_JSON
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-resources", type=int, default=0)
    ap.add_argument("report")
    args = ap.parse_args()

    with open(args.report) as f:
        data = json.load(f)
    reports = data if isinstance(data, list) else [data]

    failed = passed = skipped = listed_skips = parsing = resources = 0
    for rep in reports:
        summary = rep.get("summary", rep)
        passed += summary.get("passed", 0)
        skipped += summary.get("skipped", 0)
        resources += summary.get("resource_count", 0)
        parsing += summary.get("parsing_errors", 0)
        results = rep.get("results", {})
        for c in results.get("failed_checks", []):
            failed += 1
            lines = "-".join(str(n) for n in c.get("file_line_range") or [])
            keys = ", ".join((c.get("check_result") or {}).get("evaluated_keys") or [])
            print(f"FAIL {c.get('file_abs_path') or c.get('file_path')}:{lines} "
                  f"{c['resource']} {c['check_id']} \"{c['check_name']}\""
                  + (f" (keys: {keys})" if keys else ""))
        for c in results.get("skipped_checks", []):
            listed_skips += 1
            why = (c.get("check_result") or {}).get("suppress_comment", "")
            print(f"SKIP {c['resource']} {c['check_id']} \"{c['check_name']}\": {why}")
        for p in results.get("parsing_errors", []):
            print(f"FAIL checkov could not parse {p}")

    print(f"checkov: {passed} checks passed, {failed} failed, {skipped} skipped by annotation, "
          f"{resources} resources, {parsing} parsing errors")
    if resources < args.min_resources:
        print(f"FAIL checkov scanned {resources} resources, expected at least {args.min_resources}")
        return 1
    return 1 if failed or parsing else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""``make lint``'s dependency audit: pip-audit on the installed environment, against a triage list.

    python tools/pip_audit_gate.py [--triage security/pip-audit-triage.txt] [-- PIP_AUDIT_ARGS...]

Exit 0 when every reported vulnerability is triaged, 1 when one is not (or pip-audit itself
fails), 0 with a WARNING when the vulnerability service cannot be reached or answers for no
package (offline machines, registry mirrors without PyPI's JSON API): nothing could be audited
then, which the warning says plainly instead of reporting "no known vulnerabilities".

Triage file: one entry a line, ``ID PACKAGE REASON...`` (ID as pip-audit reports it or any of
its aliases: PYSEC-…, GHSA-…, CVE-…); ``#`` starts a comment. Every entry needs a reason.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRIAGE = ROOT / "security" / "pip-audit-triage.txt"
#: What pip-audit's traceback says when the vulnerability service is out of reach.
NETWORK_ERRORS = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|ProxyError|NewConnectionError|NameResolutionError|"
    r"Max retries exceeded|Temporary failure in name resolution|Network is unreachable|"
    r"Connection refused|SSLError|timed out",
)
NOT_FOUND = "not found on PyPI"
MIN_REASON = 10


class TriageError(ValueError):
    """The triage file is malformed."""


@dataclass(frozen=True)
class Entry:
    vuln_id: str
    package: str
    reason: str
    line: int


@dataclass
class Outcome:
    exit_code: int
    lines: list[str] = field(default_factory=list)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_triage(text: str) -> list[Entry]:
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or len(parts[2].strip()) < MIN_REASON:
            raise TriageError(
                f"line {number}: write 'ID PACKAGE REASON' with a reason of {MIN_REASON}+ characters"
            )
        entries.append(Entry(parts[0].upper(), normalize(parts[1]), parts[2].strip(), number))
    return entries


def evaluate(*, returncode: int, stdout: str, stderr: str, triage: list[Entry]) -> Outcome:
    """What the gate says about one pip-audit run (``--format json``)."""
    try:
        report = json.loads(stdout)
        dependencies = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        if NETWORK_ERRORS.search(stderr):
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            return Outcome(0, [
                "WARNING: pip-audit could not reach its vulnerability service; "
                "dependencies were NOT audited.",
                f"  ({last[:300]})",
                "  Run `make lint` where PyPI's JSON API is reachable to audit them.",
            ])  # fmt: skip
        return Outcome(1, ["pip-audit failed:", *stderr.strip().splitlines()[-20:]])

    not_found = [d for d in dependencies if NOT_FOUND in (d.get("skip_reason") or "")]
    audited = [d for d in dependencies if not d.get("skip_reason")]
    lines: list[str] = []
    if not audited and not_found:
        return Outcome(0, [
            f"WARNING: the vulnerability service answered for none of {len(not_found)} packages "
            "(each 'not found on PyPI'): dependencies were NOT audited.",
            "  This happens offline or behind a package mirror without PyPI's JSON API; run "
            "`make lint` where pypi.org is reachable.",
        ])  # fmt: skip
    if not_found:
        names = ", ".join(sorted(d["name"] for d in not_found))
        lines.append(f"WARNING: {len(not_found)} package(s) could not be audited: {names}")

    used: set[int] = set()
    untriaged = []
    for dep in audited:
        for vuln in dep.get("vulns") or []:
            ids = {vuln["id"].upper(), *(a.upper() for a in vuln.get("aliases") or [])}
            entry = next(
                (e for e in triage if e.vuln_id in ids and e.package == normalize(dep["name"])), None
            )
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix"
            text = f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixes})"
            if entry is None:
                untriaged.append(text)
            else:
                used.add(entry.line)
                lines.append(f"triaged: {text} -- {entry.reason}")
    for entry in triage:
        if entry.line not in used:
            lines.append(
                f"note: triage entry {entry.vuln_id} {entry.package} (line {entry.line}) matched nothing"
            )
    if untriaged:
        lines.append(
            f"FAIL: {len(untriaged)} vulnerability(ies) not triaged "
            "(upgrade, or add a reasoned entry to the triage file):"
        )
        lines.extend(f"  {t}" for t in untriaged)
        return Outcome(1, lines)
    lines.append(f"pip-audit: {len(audited)} package(s) audited, no untriaged vulnerability")
    return Outcome(0, lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triage", type=Path, default=DEFAULT_TRIAGE)
    parser.add_argument("--timeout", type=int, default=10, help="seconds per request to the service")
    parser.add_argument(
        "--max-seconds", type=int, default=240, help="give up (with a warning) after this long in all"
    )
    parser.add_argument("extra", nargs="*", help="more pip-audit arguments (after --)")
    args = parser.parse_args(argv)
    try:
        triage = parse_triage(args.triage.read_text()) if args.triage.exists() else []
    except TriageError as exc:
        print(f"{args.triage}: {exc}", file=sys.stderr)
        return 1
    cmd = [
        sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
        "--skip-editable", "--timeout", str(args.timeout), *args.extra,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.max_seconds)
    except subprocess.TimeoutExpired:  # a service that never answers must not stall lint
        print(
            f"WARNING: pip-audit did not finish in {args.max_seconds} s (service unreachable?); "
            "dependencies were NOT audited."
        )
        return 0
    outcome = evaluate(returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr, triage=triage)
    for line in outcome.lines:
        print(line)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())

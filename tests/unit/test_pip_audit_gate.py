"""tools/pip_audit_gate.py: fails on untriaged findings, passes with a warning when nothing
could be audited (service unreachable), never reports "no vulnerabilities" it did not check."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pip_audit_gate", ROOT / "tools" / "pip_audit_gate.py")
gate = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("pip_audit_gate", gate)  # dataclasses look their module up there
_spec.loader.exec_module(gate)


def _report(*deps) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


def _dep(name, version="1.0", vulns=(), skip=None):
    d = {"name": name, "version": version, "vulns": list(vulns)}
    if skip:
        d = {"name": name, "skip_reason": skip}
    return d


VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"], "fix_versions": ["1.1"]}


def test_an_untriaged_finding_fails_and_names_the_fix():
    out = gate.evaluate(
        returncode=1, stdout=_report(_dep("Foo_Bar", vulns=[VULN]), _dep("ok")), stderr="", triage=[]
    )
    assert out.exit_code == 1
    assert any("Foo_Bar 1.0: PYSEC-2099-1 (fixed in: 1.1)" in line for line in out.lines)


def test_a_finding_triaged_by_an_alias_passes_and_shows_the_reason():
    triage = gate.parse_triage("# comment\nCVE-2099-0001 foo-bar accepted because it is unreachable here\n")
    out = gate.evaluate(returncode=1, stdout=_report(_dep("Foo_Bar", vulns=[VULN])), stderr="", triage=triage)
    assert out.exit_code == 0
    assert any(line.startswith("triaged:") and "unreachable here" in line for line in out.lines)


def test_a_triage_entry_for_another_package_does_not_cover_a_finding():
    triage = gate.parse_triage("CVE-2099-0001 other-package some long enough reason\n")
    out = gate.evaluate(returncode=1, stdout=_report(_dep("foo-bar", vulns=[VULN])), stderr="", triage=triage)
    assert out.exit_code == 1
    assert any("matched nothing" in line for line in out.lines)


def test_triage_entries_need_a_reason():
    with pytest.raises(gate.TriageError, match="line 2"):
        gate.parse_triage("CVE-1 pkg a good reason here\nCVE-2 pkg\n")
    with pytest.raises(gate.TriageError):
        gate.parse_triage("CVE-3 pkg short\n")


def test_an_unreachable_service_warns_and_passes():
    stderr = (
        "Traceback (most recent call last):\nrequests.exceptions.ConnectionError: HTTPSConnectionPool("
        "host='pypi.org', port=443): Max retries exceeded with url: /pypi/ray/2.60.0/json\n"
    )
    out = gate.evaluate(returncode=1, stdout="", stderr=stderr, triage=[])
    assert out.exit_code == 0
    assert out.lines[0].startswith("WARNING") and "NOT audited" in out.lines[0]


def test_a_service_that_knows_no_package_is_not_reported_as_clean():
    report = _report(
        _dep("ray", skip="Dependency not found on PyPI and could not be audited: ray (2.60.0)"),
        _dep("torch", skip="Dependency not found on PyPI and could not be audited: torch (2.13.0)"),
        _dep("lorag", skip="distribution marked as editable"),
    )
    out = gate.evaluate(returncode=0, stdout=report, stderr="No known vulnerabilities found", triage=[])
    assert out.exit_code == 0
    assert "none of 2 packages" in out.lines[0] and "NOT audited" in out.lines[0]
    assert not any("no untriaged vulnerability" in line for line in out.lines)


def test_a_partial_audit_names_what_was_skipped_and_still_fails_on_findings():
    report = _report(
        _dep("ray", skip="Dependency not found on PyPI and could not be audited: ray (2.60.0)"),
        _dep("foo-bar", vulns=[VULN]),
    )
    out = gate.evaluate(returncode=1, stdout=report, stderr="", triage=[])
    assert out.exit_code == 1
    assert any("could not be audited: ray" in line for line in out.lines)


def test_pip_audit_breaking_for_another_reason_fails():
    out = gate.evaluate(returncode=2, stdout="", stderr="usage: pip-audit: error: bad flag\n", triage=[])
    assert out.exit_code == 1 and "bad flag" in out.lines[-1]


def test_the_shipped_triage_file_parses_and_gives_every_entry_a_reason():
    entries = gate.parse_triage((ROOT / "security" / "pip-audit-triage.txt").read_text())
    assert entries and all(len(e.reason) >= gate.MIN_REASON for e in entries)


def test_a_service_that_never_answers_cannot_stall_lint(monkeypatch, capsys, tmp_path):
    seen = {}

    def never_answers(cmd, **kwargs):
        seen.update(kwargs, cmd=cmd)
        raise gate.subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(gate.subprocess, "run", never_answers)
    assert gate.main(["--triage", str(tmp_path / "none.txt"), "--max-seconds", "7"]) == 0
    assert seen["timeout"] == 7 and "pip_audit" in seen["cmd"]
    assert "did not finish in 7 s" in capsys.readouterr().out


def test_main_fails_on_a_malformed_triage_file(tmp_path, capsys):
    bad = tmp_path / "triage.txt"
    bad.write_text("CVE-1 pkg\n")
    assert gate.main(["--triage", str(bad)]) == 1
    assert "line 1" in capsys.readouterr().err

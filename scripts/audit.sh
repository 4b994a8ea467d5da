#!/usr/bin/env bash
# make audit: pip-audit over the pinned set (requirements.txt, every pin, no resolution), in its
# own virtualenv so the project's .venv is never touched. A reported advisory is accepted only
# through audit-exceptions.txt: one advisory id per line followed by the reason it is accepted.
# Not part of `make test`: the advisory feed changes without our code changing (CI runs it on
# pull requests and nightly).
#
# Exit status: 0 nothing unaccepted; 1 vulnerabilities found; 2 the audit could not run or is
# incomplete (bad exceptions file, pip-audit not installable, advisory service unreachable,
# packages it could not look up) — a line says why.
#
# Environment: AUDIT_REQUIREMENTS (default requirements.txt), AUDIT_EXCEPTIONS (default
# audit-exceptions.txt), AUDIT_SERVICE (pypi | osv, default pypi), AUDIT_VENV (keep pip-audit's
# virtualenv there between runs; default: a temporary one), PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

# pip-audit is a tool, not a dependency of the project, so it is pinned here, not in requirements.txt.
PIP_AUDIT=pip-audit==2.10.1
requirements=${AUDIT_REQUIREMENTS:-requirements.txt}
exceptions=${AUDIT_EXCEPTIONS:-audit-exceptions.txt}
service=${AUDIT_SERVICE:-pypi}
python=${PYTHON:-python3}

fail() { echo "audit: $*" >&2; exit 2; }

[[ -f $requirements ]] || fail "no $requirements"
[[ -f $exceptions ]] || fail "no $exceptions (it may be empty, but it must exist)"
lineno=0
while IFS= read -r line || [[ -n $line ]]; do
  lineno=$((lineno + 1))
  [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
  read -r id reason <<<"$line"
  [[ $id =~ ^[A-Z][A-Z0-9]*-[A-Za-z0-9._:-]+$ ]] || fail "$exceptions:$lineno: '$id' is not an advisory id (PYSEC-…, GHSA-…, CVE-…)"
  [[ -n ${reason:-} ]] || fail "$exceptions:$lineno: $id has no reason; write why it is accepted"
done <"$exceptions"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=${AUDIT_VENV:-$work/venv}
if [[ ! -x $venv/bin/pip-audit ]] || [[ $("$venv/bin/pip-audit" --version 2>/dev/null) != "pip-audit ${PIP_AUDIT#*==}" ]]; then
  if ! { "$python" -m venv --clear "$venv" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$PIP_AUDIT"; } >"$work/install.log" 2>&1; then
    fail "could not install $PIP_AUDIT into $venv: $(grep -v '^\s*$' "$work/install.log" | tail -n 1)"
  fi
fi

# --no-deps --disable-pip: audit exactly the pins as written; nothing is resolved or installed.
set +e
"$venv/bin/pip-audit" --requirement "$requirements" --no-deps --disable-pip --vulnerability-service "$service" \
  --progress-spinner off --format json --output "$work/report.json" 2>"$work/stderr.log"
status=$?
set -e

if ! "$venv/bin/python" -c 'import json, sys; json.load(open(sys.argv[1]))' "$work/report.json" 2>/dev/null; then
  why=$(grep -v '^\s*$' "$work/stderr.log" | tail -n 1)
  fail "pip-audit could not query the '$service' advisory service (exit $status): ${why:-no output}"
fi

exec "$venv/bin/python" - "$work/report.json" "$exceptions" "$requirements" <<'PY'
"""Apply the accepted exceptions to pip-audit's JSON report and print one line per finding."""
import json
import sys

report_path, exceptions_path, requirements = sys.argv[1:4]
accepted: dict[str, str] = {}
for line in open(exceptions_path, encoding="utf-8"):
    if line.strip() and not line.lstrip().startswith("#"):
        advisory, reason = line.split(maxsplit=1)
        accepted[advisory] = reason.strip()

report = json.load(open(report_path, encoding="utf-8"))
dependencies = report.get("dependencies", [])
open_findings, used = [], set()
for dependency in dependencies:
    for vuln in dependency.get("vulns", []):
        ids = [vuln["id"], *vuln.get("aliases", [])]
        match = next((i for i in ids if i in accepted), None)
        aliases = f" ({', '.join(vuln.get('aliases', []))})" if vuln.get("aliases") else ""
        fixes = vuln.get("fix_versions", [])
        fixed = f"fixed in {', '.join(fixes)}" if fixes else "no fixed release yet"
        where = f"{dependency['name']} {dependency['version']}: {vuln['id']}{aliases}, {fixed}"
        if match:
            used.add(match)
            print(f"accepted  {where} — {accepted[match]}")
        else:
            open_findings.append(where)
            print(f"VULNERABLE {where}")
skipped = [d for d in dependencies if "skip_reason" in d]
if dependencies and len(skipped) == len(dependencies):
    # pip-audit reports an unreachable or empty service as "not found" for every package.
    print(
        f"audit: the advisory service answered for none of the {len(dependencies)} pins of {requirements} "
        f"(first: {skipped[0]['skip_reason']}); it is not reachable from here, nothing was audited"
    )
    sys.exit(2)
for dependency in skipped:
    print(f"NOT AUDITED {dependency['name']}: {dependency['skip_reason']}")
for advisory in sorted(set(accepted) - used):
    print(f"stale     {advisory} is no longer reported: remove it from {exceptions_path}")
print(
    f"audit: {len(open_findings)} unaccepted vulnerabilit{'y' if len(open_findings) == 1 else 'ies'} "
    f"in {len(dependencies) - len(skipped)} pinned packages of {requirements} ({len(used)} accepted by "
    f"{exceptions_path}, {len(skipped)} not audited)"
)
# Vulnerabilities first; an incomplete audit is not a pass either.
sys.exit(1 if open_findings else 2 if skipped else 0)
PY

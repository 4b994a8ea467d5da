"""The RDS apply types against the installed PostgreSQL's own parameter table: runs the
``postgres`` binary (a Debian package from scripts/setup.sh), so it lives with the local target's
tests rather than in tests/unit."""

from __future__ import annotations

import subprocess

from localplatform.binaries import find_pg_bin
from rendering.rds_parameters import RDS_PARAMETER_FACTS


def test_rds_apply_types_match_the_postgres_contexts() -> None:
    """rendering.rds_parameters says which parameters are static; PostgreSQL itself says which
    need a restart (context ``postmaster``). Checked against the installed server's own table."""
    pg_bin, major = find_pg_bin()
    described = subprocess.run(
        [str(pg_bin / "postgres"), "--describe-config"], capture_output=True, text=True, check=True
    ).stdout
    contexts = {line.split("\t")[0]: line.split("\t")[1] for line in described.splitlines() if "\t" in line}
    community = {name: facts for name, facts in RDS_PARAMETER_FACTS.items() if not name.startswith("rds.")}
    assert set(community) <= set(contexts)
    for name, facts in community.items():
        expected = "static" if contexts[name] == "postmaster" else "dynamic"
        assert (name, facts.apply_type_for(major)) == (name, expected)

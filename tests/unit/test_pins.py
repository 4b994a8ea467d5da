"""Supply chain: everything pinned exactly, in one place, and MLflow above the CVE floor."""

from __future__ import annotations

from pathlib import Path

from rendering.versions import REQUIREMENTS, mlflow_version, pinned_python_versions

ROOT = Path(__file__).resolve().parents[2]
# 3.17.0 fixes the last MLflow CVE with a known fix in shared/reference (CVE-2026-115886);
# 3.16.1 removed the default admin credentials (CVE-2026-2635).
MLFLOW_CVE_FLOOR = (3, 17, 0)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3])


def test_mlflow_is_at_or_above_the_cve_floor():
    assert _version_tuple(mlflow_version()) >= MLFLOW_CVE_FLOOR


def test_every_requirement_line_is_an_exact_pin():
    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    assert entries and all("==" in line for line in entries), [e for e in entries if "==" not in e]
    pins = pinned_python_versions()
    for package in ("mlflow", "pulumi", "pulumi-aws", "pulumi-kubernetes", "psycopg2-binary", "boto3", "flask-wtf"):
        assert package in pins, package


def test_in_files_name_packages_without_versions():
    for in_file in (ROOT / "requirements").glob("*.in"):
        for line in in_file.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert not any(op in line for op in ("=", "<", ">", "~")), f"{in_file.name}: {line}"


def test_pulumi_install_reads_the_same_pins():
    # `pulumi install` (pip toolchain) runs in infra/ and installs infra/requirements.txt.
    lines = (ROOT / "infra" / "requirements.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == ["-r ../requirements.txt"]


def test_previous_mlflow_is_the_previous_minor_of_the_pinned_one():
    """The upgrade test (tests/upgrade) starts on this release and upgrades to the pinned one."""
    from localplatform.mlflow_venv import PREVIOUS_PINS, previous_mlflow_version
    from rendering.mlflow_server import MINIMUM_MLFLOW_VERSION

    pinned, previous = _version_tuple(mlflow_version()), _version_tuple(previous_mlflow_version())
    assert previous[0] == pinned[0] and previous[1] == pinned[1] - 1, (previous, pinned)
    assert previous >= MINIMUM_MLFLOW_VERSION
    lines = [line.strip() for line in PREVIOUS_PINS.read_text().splitlines() if line.strip() and line[0] != "#"]
    version = previous_mlflow_version()
    assert sorted(lines) == sorted(f"{name}=={version}" for name in ("mlflow[auth]", "mlflow-skinny", "mlflow-tracing"))


def test_the_image_tag_ci_writes_is_the_one_the_stack_reads():
    from rendering.versions import IMAGE_TAG_PATTERN

    workflow = (ROOT / ".github" / "workflows" / "image.yml").read_text()
    assert 'tag="mlflow-${MLFLOW_VERSION}-inputs-${INPUTS_HASH:0:32}"' in workflow
    assert IMAGE_TAG_PATTERN.match(f"mlflow-{mlflow_version()}-inputs-{'0a' * 16}")

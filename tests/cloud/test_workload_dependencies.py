"""Ordering in the graph (issue 16): every Job, Deployment and CronJob depends on the
ServiceAccounts, Secrets and ConfigMaps it mounts or reads.

A pod that names an object by a plain string (``serviceAccountName``, ``secretName``) gives
Pulumi nothing to infer an edge from, so without an explicit ``depends_on`` the object may be
created at the same time as the pod. The pod then fails ("serviceaccount not found", a
Secret-mount error) until it appears, and a Job that Pulumi awaits may exhaust its
``backoffLimit`` first. Asserted on the dependencies the engine receives, for both stack files.
"""

from __future__ import annotations

import pytest

from tests.workloads import STACKS, kind_of, namespaced, program, referenced_objects, workloads


@pytest.mark.parametrize("stack", STACKS)
def test_every_workload_depends_on_what_its_pods_mount(stack: str):
    mocks = program(stack)
    found = workloads(mocks)
    assert sorted(w.kind for w in found) == ["CronJob", "Deployment", "Job", "Job"]
    missing = []
    for workload in found:
        dependencies = set(mocks.dependencies[workload.record.name])
        for kind, name in referenced_objects(workload):
            target = namespaced(mocks, kind, workload.namespace, name)
            if target.name not in dependencies:
                missing.append(f"{workload.kind} {workload.name} -> {kind} {name}")
    assert missing == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_deployment_waits_for_the_migration_job(stack: str):
    mocks = program(stack)
    deployment = next(w for w in workloads(mocks) if w.kind == "Deployment")
    jobs = {r.name for r in mocks.resources if kind_of(r) == "Job" and "migration" in r.name}
    assert len(jobs) == 1
    assert jobs <= set(mocks.dependencies[deployment.record.name])

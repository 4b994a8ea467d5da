"""The pod contract: the tracking-server Deployment, the migration Job and the admin-password
Job, taken from the Pulumi program's recorded objects for both stack files, run on real
processes as the kubelet would (tests/pod/kubelet.py), against PostgreSQL playing RDS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.workloads import STACKS, program

from .harness import Cluster, cluster, rendered
from .kubelet import PodRun

pytestmark = pytest.mark.usefixtures("as_root")


def _prepare(stack: str) -> tuple[ExitStack, Cluster, PodRun]:
    """The migration Job on a fresh database, the same Job again (a no-op), then the
    Deployment's pod up to every probe passing."""
    resources = ExitStack()
    try:
        node = resources.enter_context(cluster(stack))
        migration = node.workload("Job", "mlflow-db-migrate-")
        node.pod(migration).run_to_completion(timeout_s=600)
        node.pod(migration).run_to_completion(timeout_s=600)
        server = node.pod(node.workload("Deployment", "mlflow"))
        server.start_service()
    except BaseException:
        resources.close()
        raise
    return resources, node, server


@pytest.fixture(scope="module")
def prepared() -> Iterator[dict[str, Future[tuple[ExitStack, Cluster, PodRun]]]]:
    """Both stacks at once, each on its own node (most of the time is waiting on probes and
    migrations). The Pulumi program runs first, here: its mocks are process-wide state."""
    for stack in STACKS:
        program(stack)
    with ThreadPoolExecutor(max_workers=len(STACKS)) as pool:
        futures = {stack: pool.submit(_prepare, stack) for stack in STACKS}
        try:
            yield futures
        finally:
            for future in futures.values():
                if future.exception() is None:
                    future.result()[0].close()


@pytest.fixture(scope="module", params=STACKS)
def running(
    request: pytest.FixtureRequest, prepared: dict[str, Future[tuple[ExitStack, Cluster, PodRun]]]
) -> tuple[Cluster, PodRun]:
    _, node, server = prepared[request.param].result()
    return node, server


def test_the_migration_job_ran_twice_and_the_server_pod_passed_every_probe(running: tuple[Cluster, PodRun]):
    node, server = running
    first, second = [r.log_tail("migrate", 100_000) for r in node.runs if r.name.startswith("mlflow-db-migrate")]
    created = [line.split("done: ", 1)[1] for line in first.splitlines() if "done: create " in line]
    assert len(created) >= 3 and "bootstrap: complete" in first, first
    # Again: what the first run created is found and skipped (grants are re-applied, idempotent).
    assert all(f"skip: {step} (already done)" in second for step in created), second
    assert "done: create " not in second and "bootstrap: complete" in second, second
    probed = [
        (c["name"], kind)
        for c in [*server.pod.get("initContainers", []), *server.pod["containers"]]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        if kind in c
    ]
    assert len(probed) >= 8, probed
    assert all(r.process.poll() is None for r in server.running), [r.name for r in server.running]


def test_each_container_runs_as_its_user_on_a_read_only_root(running: tuple[Cluster, PodRun]):
    """The processes themselves, read from /proc: UID/GID and fsGroup as the spec says, the
    pod's network namespace (not the machine's), and a root that refuses writes."""
    _, server = running
    host_net = os.readlink("/proc/self/ns/net")
    by_name = {c["name"]: c for c in [*server.pod.get("initContainers", []), *server.pod["containers"]]}
    for running_container in server.running:
        pid = running_container.process.pid
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        spec = by_name[running_container.name]
        expected = server.process(spec, ("true",))
        assert status["Uid"].split()[0] == str(expected.uid) != "0", running_container.name
        assert status["Gid"].split()[0] == str(expected.gid), running_container.name
        assert str(server.pod["securityContext"]["fsGroup"]) in status["Groups"].split()
        assert status["NoNewPrivs"].strip() == "1"
        assert os.readlink(f"/proc/{pid}/ns/net") != host_net
        # Its mount table as it sees it (chrooted): the last mount on "/" is its root.
        roots = [line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()]
        root_options = [fields[5].split(",") for fields in roots if fields[4] == "/"][-1]
        assert expected.read_only_root and "ro" in root_options, (running_container.name, root_options)


def test_the_service_target_port_reaches_the_container_that_serves_it(running: tuple[Cluster, PodRun]):
    node, server = running
    (service,) = rendered(node.stack, "Service", "mlflow")
    for port in service["spec"]["ports"]:
        target = port["targetPort"]
        owners = [
            c
            for c in server.pod["containers"]
            for p in c.get("ports", [])
            if p.get("name") == target or p["containerPort"] == target
        ]
        assert len(owners) == 1, (target, [c["name"] for c in owners])
        probe = {"httpGet": {"path": "/health", "port": target}, "timeoutSeconds": 3}
        assert server.probe_once(owners[0], probe) is None


def test_every_port_a_network_policy_admits_is_served(running: tuple[Cluster, PodRun]):
    node, server = running
    (deployment,) = rendered(node.stack, "Deployment", "mlflow")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    admitted = set()
    for policy in rendered(node.stack, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if all(labels.get(k) == v for k, v in selector.items()):
            for rule in policy["spec"].get("ingress", []):
                admitted |= {p["port"] for p in rule.get("ports", [])}
    assert admitted
    container = server.pod["containers"][0]
    for port in sorted(admitted):
        assert server.probe_once(container, {"tcpSocket": {"port": port}, "timeoutSeconds": 3}) is None, port


def test_an_mlflow_client_works_through_the_admission_proxy_on_the_pod_ip(running: tuple[Cluster, PodRun]):
    node, server = running
    proxy_port = next(
        p["containerPort"] for c in server.pod["containers"] for p in c.get("ports", []) if p.get("name") == "proxy"
    )
    password = node.objects().secrets["mlflow-server"]["MLFLOW_AUTH_ADMIN_PASSWORD"].decode()
    code = (
        "import mlflow, json\n"
        "from mlflow import MlflowClient\n"
        "client = MlflowClient()\n"
        "eid = client.create_experiment('pod-contract')\n"
        "run = client.create_run(eid)\n"
        "client.log_metric(run.info.run_id, 'loss', 0.5, step=1)\n"
        "got = client.get_run(run.info.run_id).data.metrics\n"
        "print(json.dumps(got))\n"
    )
    env = {
        "MLFLOW_TRACKING_URI": f"http://{server.pod_ip}:{proxy_port}",
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "HOME": str(node.directory),
    }
    result = node.node_python(code, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"loss": 0.5}
    env["MLFLOW_TRACKING_PASSWORD"] = "wrong"  # basic-auth is really on
    denied = node.node_python("from mlflow import MlflowClient\nMlflowClient().search_experiments()\n", env)
    assert denied.returncode != 0 and "401" in denied.stderr + denied.stdout


def test_the_admin_password_job_runs_through_the_ingress(running: tuple[Cluster, PodRun]):
    node, server = running
    (service,) = rendered(node.stack, "Service", "mlflow")
    target = service["spec"]["ports"][0]["targetPort"]
    port = next(
        p["containerPort"] for c in server.pod["containers"] for p in c.get("ports", []) if p.get("name") == target
    )
    node.ingress(f"{server.pod_ip}:{port}")
    job = node.pod(node.workload("Job", "mlflow-admin-password-"))
    job.run_to_completion(timeout_s=300)
    new_password = node.objects().secrets[job.pod["volumes"][0]["secret"]["secretName"]]["admin-password"].decode()
    env = {
        "MLFLOW_TRACKING_URI": f"http://{server.pod_ip}:{port}",
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": new_password,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "HOME": str(node.directory),
    }
    result = node.node_python("from mlflow import MlflowClient\nMlflowClient().search_experiments()\n", env)
    assert result.returncode == 0, result.stderr[-2000:]


GC_SETUP = """
import json, os, time
import boto3, psycopg2
from mlflow import MlflowClient

client = MlflowClient()
experiment = client.create_experiment("gc-" + str(time.time()))
old, recent = client.create_run(experiment), client.create_run(experiment)
s3 = boto3.client("s3", endpoint_url=os.environ["S3"], verify=os.environ["CA"], region_name="us-east-1")
keys = {}
bucket = old.info.artifact_uri.removeprefix("s3://").partition("/")[0]
s3.create_bucket(Bucket=bucket)  # what the ArtifactStore component creates on AWS
for run in (old, recent):
    bucket, _, prefix = run.info.artifact_uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=prefix + "/model/model.pkl", Body=b"weights")
    keys[run.info.run_id] = prefix
    client.delete_run(run.info.run_id)
db = psycopg2.connect(os.environ["DSN"])
with db, db.cursor() as cursor:  # deleted 60 days ago: older than either stack's olderThan
    cursor.execute(
        "UPDATE runs SET deleted_time = %s WHERE run_uuid = %s",
        (int((time.time() - 60 * 86400) * 1000), old.info.run_id),
    )
print(json.dumps({"bucket": bucket, "old": old.info.run_id, "recent": recent.info.run_id, "keys": keys}))
"""

GC_CHECK = """
import json, os, sys
import boto3, psycopg2

state = json.loads(sys.argv[1] if len(sys.argv) > 1 else os.environ["STATE"])
s3 = boto3.client("s3", endpoint_url=os.environ["S3"], verify=os.environ["CA"], region_name="us-east-1")
db = psycopg2.connect(os.environ["DSN"])
with db, db.cursor() as cursor:
    cursor.execute("SELECT run_uuid FROM runs WHERE run_uuid IN (%s, %s)", (state["old"], state["recent"]))
    rows = sorted(r[0] for r in cursor.fetchall())
objects = {
    run: s3.list_objects_v2(Bucket=state["bucket"], Prefix=prefix).get("KeyCount", 0)
    for run, prefix in state["keys"].items()
}
print(json.dumps({"rows": rows, "objects": objects}))
"""


def test_the_gc_job_deletes_an_old_deleted_run_and_its_objects(running: tuple[Cluster, PodRun]):
    """The CronJob's job template with IRSA (moto STS and S3 at the regional names): the run
    deleted longer ago than ``olderThan`` and its objects go, the recently deleted one stays."""
    node, server = running
    node.start_aws()
    proxy_port = next(
        p["containerPort"] for c in server.pod["containers"] for p in c.get("ports", []) if p.get("name") == "proxy"
    )
    rds = node.rds()
    env = {
        "MLFLOW_TRACKING_URI": f"http://{server.pod_ip}:{proxy_port}",
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": node.objects().secrets["mlflow-server"]["MLFLOW_AUTH_ADMIN_PASSWORD"].decode(),
        "HOME": str(node.directory),
        "S3": "https://198.19.0.1",
        "CA": str(node.ca.cert),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DSN": f"host=198.19.0.1 port={int(rds['port'])} dbname=mlflow user={rds['username']} "
        f"password={rds['password']} sslmode=require",
    }
    setup = node.node_python(GC_SETUP, env)
    assert setup.returncode == 0, setup.stderr[-3000:]
    state = json.loads(setup.stdout.strip().splitlines()[-1])
    before = json.loads(node.node_python(GC_CHECK, {**env, "STATE": json.dumps(state)}).stdout.splitlines()[-1])
    assert before == {"rows": sorted([state["old"], state["recent"]]), "objects": {state["old"]: 1, state["recent"]: 1}}
    job = node.pod(node.workload("CronJob", "mlflow-gc"))
    assert any(e["name"] == "AWS_ROLE_ARN" for e in job.pod["containers"][0]["env"])  # IRSA admitted it
    job.run_to_completion(timeout_s=300)
    after = node.node_python(GC_CHECK, {**env, "STATE": json.dumps(state)})
    assert after.returncode == 0, after.stderr[-2000:]
    assert json.loads(after.stdout.splitlines()[-1]) == {
        "rows": [state["recent"]],
        "objects": {state["old"]: 0, state["recent"]: 1},
    }

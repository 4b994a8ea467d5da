#!/usr/bin/env bash
# Post-deploy smoke check of one stack, in parts, each runnable where it can reach what it checks:
#
#   health     /health answers (retried while the rollout settles).
#              Needs network reach to the ingress: prod's ALB and dev's NLB are internal, so this
#              runs on the runner inside the connected network (docs/cluster.md, "First deployment").
#   api        the smoke user exists as a non-admin with the configured password (created, or its
#              password set, by the admin whose credentials are stack outputs: on a first deploy it
#              does not exist yet); an authenticated experiments/search succeeds, an anonymous one
#              gets 401. Same network reach as health.
#   artifacts  put, get and list under artifactRoot as the training role
#              (scripts/check_artifact_store.py: the guide's most common production failure).
#              AWS APIs only: runs anywhere with credentials the training role trusts (the stack
#              files add the deploy role to mlflow-platform:training.extraPrincipals).
#
# Usage: smoke-check.sh <stack> [health|api|artifacts ...]    (no part: all three, in that order)
# Env:   MLFLOW_TRACKING_URL       optional; otherwise the stack output trackingUrl
#        MLFLOW_SMOKE_USERNAME     the smoke user (api), kept for this check
#        MLFLOW_SMOKE_PASSWORD
#        CURL_CA_BUNDLE            optional (curl's own): a private CA for the tracking host
#        SMOKE_PYTHON              optional; the interpreter with the project's packages (default .venv)
set -euo pipefail
stack=${1:?usage: smoke-check.sh <stack> [health|api|artifacts ...]}
shift
parts=("$@")
if [[ ${#parts[@]} -eq 0 ]]; then
  parts=(health api artifacts)
fi
for part in "${parts[@]}"; do
  case $part in
    health | api | artifacts) ;;
    *)
      echo "::error::unknown part '$part'; expected health, api or artifacts"
      exit 2
      ;;
  esac
done
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

output() { pulumi stack output --stack "$stack" "$@"; }

tracking_url() {
  local url=${MLFLOW_TRACKING_URL:-$(output trackingUrl 2>/dev/null || true)}
  url=${url%/}
  if [[ -z "$url" ]]; then
    echo "::error::no tracking URL: set MLFLOW_TRACKING_URL or deploy the Kubernetes side (stack output trackingUrl)" >&2
    exit 1
  fi
  printf '%s' "$url"
}

# Credentials go to curl on stdin (--config -), never on its command line where `ps` shows them.
quote() { local value=${1//\\/\\\\}; printf '"%s"' "${value//\"/\\\"}"; }
as_user() { # as_user <user> <password> <curl args...>: prints the HTTP status
  local user=$1 password=$2
  shift 2
  printf 'user = %s\n' "$(quote "$user:$password")" |
    curl --config - --silent --show-error --max-time 20 --output "$body" --write-out '%{http_code}' "$@"
}
body=$(mktemp)
trap 'rm -f "$body"' EXIT

check_health() {
  local url
  url=$(tracking_url)
  echo "health: $url/health"
  curl --fail --silent --show-error --max-time 10 --retry 12 --retry-delay 10 --retry-all-errors "$url/health"
  echo
}

search() { # search <user> <password>: status of experiments/search
  as_user "$1" "$2" --header 'Content-Type: application/json' --data '{"max_results": 1}' \
    "$url/api/2.0/mlflow/experiments/search"
}

ensure_smoke_user() {
  local admin admin_password status payload
  admin=$(output trackingAdminUsername)
  admin_password=$(output trackingAdminPassword --show-secrets)
  payload=$(jq -cn --arg u "$MLFLOW_SMOKE_USERNAME" --arg p "$MLFLOW_SMOKE_PASSWORD" '{username: $u, password: $p}')
  status=$(as_user "$admin" "$admin_password" --get --data-urlencode "username=$MLFLOW_SMOKE_USERNAME" \
    "$url/api/2.0/mlflow/users/get")
  case $status in
    404)
      echo "api: creating the smoke user $MLFLOW_SMOKE_USERNAME (first deploy)"
      status=$(as_user "$admin" "$admin_password" --header 'Content-Type: application/json' --data "$payload" \
        "$url/api/2.0/mlflow/users/create")
      ;;
    200)
      if [[ $(jq -r '.user.is_admin' "$body") != false ]]; then
        echo "::error::the smoke user $MLFLOW_SMOKE_USERNAME is an admin; it must be an ordinary user"
        exit 1
      fi
      echo "api: setting the smoke user's password from MLFLOW_SMOKE_PASSWORD"
      status=$(as_user "$admin" "$admin_password" --request PATCH --header 'Content-Type: application/json' \
        --data "$payload" "$url/api/2.0/mlflow/users/update-password")
      ;;
  esac
  if [[ $status != 200 ]]; then
    echo "::error::managing the smoke user as the admin answered HTTP $status: $(head -c 300 "$body")"
    exit 1
  fi
}

check_api() {
  : "${MLFLOW_SMOKE_USERNAME:?set the MLFLOW_SMOKE_USERNAME environment secret (docs/ci.md)}"
  : "${MLFLOW_SMOKE_PASSWORD:?set the MLFLOW_SMOKE_PASSWORD environment secret (docs/ci.md)}"
  url=$(tracking_url)
  echo "api: authenticated experiments/search as $MLFLOW_SMOKE_USERNAME"
  local status
  status=$(search "$MLFLOW_SMOKE_USERNAME" "$MLFLOW_SMOKE_PASSWORD")
  if [[ $status == 401 ]]; then
    ensure_smoke_user
    status=$(search "$MLFLOW_SMOKE_USERNAME" "$MLFLOW_SMOKE_PASSWORD")
  fi
  if [[ $status != 200 ]]; then
    echo "::error::experiments/search as the smoke user answered HTTP $status: $(head -c 300 "$body")"
    exit 1
  fi
  status=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 20 \
    --header 'Content-Type: application/json' --data '{"max_results": 1}' "$url/api/2.0/mlflow/experiments/search")
  if [[ $status != 401 ]]; then
    echo "::error::anonymous experiments/search answered HTTP $status; basic-auth must answer 401"
    exit 1
  fi
}

check_artifacts() {
  local python=${SMOKE_PYTHON:-$root/.venv/bin/python} artifact_root training_role
  artifact_root=$(output artifactRoot)
  training_role=$(output trainingRoleArn)
  echo "artifacts: write and read back under $artifact_root as $training_role"
  "$python" "$root/scripts/check_artifact_store.py" --artifact-root "$artifact_root" --role-arn "$training_role"
}

for part in "${parts[@]}"; do
  "check_$part"
done
echo "smoke check of $stack passed: ${parts[*]}"

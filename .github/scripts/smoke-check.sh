#!/usr/bin/env bash
# Post-deploy smoke check of one stack, from the outside in:
#   1. /health answers (retried while the rollout settles);
#   2. an authenticated API call succeeds and an anonymous one is refused (basic-auth is on);
#   3. the artifact store accepts a write and a read-back with the training role
#      (scripts/check_artifact_store.py: the guide's most common production failure).
#
# Usage: smoke-check.sh <stack>
# Env:   MLFLOW_TRACKING_URL       optional; otherwise the stack output `trackingUrl`
#        MLFLOW_SMOKE_USERNAME     a non-admin MLflow user kept for this check
#        MLFLOW_SMOKE_PASSWORD
set -euo pipefail
stack=${1:?usage: smoke-check.sh <stack>}
: "${MLFLOW_SMOKE_USERNAME:?set the MLFLOW_SMOKE_USERNAME environment secret (docs/ci.md)}"
: "${MLFLOW_SMOKE_PASSWORD:?set the MLFLOW_SMOKE_PASSWORD environment secret (docs/ci.md)}"

output() { pulumi stack output --stack "$stack" "$1"; }
url=${MLFLOW_TRACKING_URL:-$(output trackingUrl 2>/dev/null || true)}
url=${url%/}
if [[ -z "$url" ]]; then
  echo "::error::no tracking URL: set the MLFLOW_TRACKING_URL environment variable or export trackingUrl"
  exit 1
fi
search="$url/api/2.0/mlflow/experiments/search"

echo "1/3 health: $url/health"
curl --fail --silent --show-error --max-time 10 --retry 12 --retry-delay 10 --retry-all-errors "$url/health"
echo

echo "2/3 authenticated experiments/search"
# Credentials go to curl on stdin (--config -), not on its command line where `ps` would show them.
quote() { local value=${1//\\/\\\\}; printf '"%s"' "${value//\"/\\\"}"; }
printf 'user = %s\n' "$(quote "$MLFLOW_SMOKE_USERNAME:$MLFLOW_SMOKE_PASSWORD")" |
  curl --config - --fail --silent --show-error --max-time 20 \
    --header 'Content-Type: application/json' --data '{"max_results": 1}' "$search" >/dev/null
anonymous=$(curl --silent --output /dev/null --write-out '%{http_code}' --max-time 20 \
  --header 'Content-Type: application/json' --data '{"max_results": 1}' "$search")
if [[ "$anonymous" != 401 ]]; then
  echo "::error::anonymous experiments/search answered HTTP $anonymous; basic-auth must answer 401"
  exit 1
fi

echo "3/3 artifact store: write and read back with the training role"
.venv/bin/python scripts/check_artifact_store.py \
  --artifact-root "$(output artifactRoot)" \
  --role-arn "$(output trainingRoleArn)"
echo "smoke check of $stack passed"

#!/usr/bin/env bash
# Is this the first deployment of the stack's Kubernetes side? Then deploy-stack.yml runs the first
# phase (`pulumi up --config mlflow-platform:kubernetes=false`: VPC, EKS, access entries, the
# deployer's 443 rule and route, RDS, S3, IAM) before the normal `up` (docs/cluster.md, "First
# deployment"). The answer comes from the stack's state: no Kubernetes provider in it means the
# Kubernetes side was never deployed. Never the other way round: on a stack whose state holds the
# provider, `kubernetes=false` would delete the tracking server.
#
# Usage: first-deploy-phase.sh <stack>   Prints first=true|false (to $GITHUB_OUTPUT when set).
set -euo pipefail
stack=${1:?usage: first-deploy-phase.sh <stack>}

state=$(mktemp)
trap 'rm -f "$state"' EXIT
if ! pulumi stack export --stack "$stack" >"$state"; then
  echo "::error::cannot read the state of stack $stack (see docs/ci.md: backend login, stack init)"
  exit 1
fi
if ! providers=$(jq '[.deployment.resources[]? | select(.type == "pulumi:providers:kubernetes")] | length' "$state"); then
  echo "::error::the state of stack $stack is not a Pulumi stack export"
  exit 1
fi
if [[ "$providers" == 0 ]]; then
  first=true
  echo "stack $stack has no Kubernetes side yet: first phase (AWS only), then a normal up"
else
  first=false
  echo "stack $stack already runs its Kubernetes side: a normal up"
fi
echo "first=$first" >>"${GITHUB_OUTPUT:-/dev/stdout}"

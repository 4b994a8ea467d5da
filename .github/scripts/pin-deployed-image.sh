#!/usr/bin/env bash
# Previews must compare the program with what is deployed. The tracking-server image digest is
# set by the deploy workflow (`pulumi config set`) and never committed, so the stack file in git
# holds a placeholder; without this step every PR preview and every drift check would show an
# image change. This reads the digest the stack's Deployment runs from the stack's state and sets
# it in this checkout's Pulumi.<stack>.yaml (the runner's copy only).
#
# Usage: pin-deployed-image.sh <stack> <ecr-repository-name>
set -euo pipefail
stack=${1:?usage: pin-deployed-image.sh <stack> <ecr-repository-name>}
repository=${2:?usage: pin-deployed-image.sh <stack> <ecr-repository-name>}

state=$(mktemp)
trap 'rm -f "$state"' EXIT
if ! pulumi stack export --stack "$stack" >"$state"; then
  echo "::error::cannot read the state of stack $stack (see docs/ci.md: backend login, stack init)"
  exit 1
fi

# Every string in a Deployment's inputs that names our repository by digest (the MLflow container),
# with or without the tag image.yml gives it (<repository>:mlflow-<version>-inputs-<hash>@sha256:…).
found=$(jq -r --arg repo "/$repository" '
  [.deployment.resources[]?
   | select(.type == "kubernetes:apps/v1:Deployment")
   | .inputs | .. | strings
   | select(test("@sha256:[0-9a-f]{64}$"))
   | select(split("@")[0] | sub(":[^/]*$"; "") | endswith($repo))]
  | unique | .[]' "$state")
images=()
if [[ -n "$found" ]]; then
  mapfile -t images <<<"$found"
fi

case ${#images[@]} in
  0)
    echo "::notice::stack $stack runs no $repository image yet; previewing with the image in its stack file"
    ;;
  1)
    pulumi config set --stack "$stack" --path 'mlflow-platform:server.image' "${images[0]}"
    echo "stack $stack: previewing against the deployed image ${images[0]}"
    ;;
  *)
    echo "::error::stack $stack runs several $repository images (${images[*]}); cannot tell which is current"
    exit 1
    ;;
esac

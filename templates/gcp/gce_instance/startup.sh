#!/bin/bash
# dativo-tf: runs the job's container once at boot, then powers the VM off.
# Nothing job-specific is written into this script: it reads every value from this VM's metadata
# (the dativo-* keys) at run time, and the image, arguments and environment values arrive base64-encoded,
# so no value is ever read as shell code.
set -u
# Power off on any exit (success, failure, or a step that could not run), so the VM never idles.
trap 'shutdown -h now' EXIT

METADATA=http://metadata.google.internal/computeMetadata/v1/instance
meta() { curl -sSf --retry 5 -H 'Metadata-Flavor: Google' "$METADATA/$1"; }
attr() { meta "attributes/$1"; }
decode() { printf '%s' "$1" | base64 -d; }
fail() { echo "dativo-tf: $*" >&2; exit 1; }

# A scheduled job's VM is created by `terraform apply`: that first boot is not a scheduled run, so it only
# powers off. The marker lives on the boot disk, which survives stop and start (a replaced VM skips again).
state=${DATIVO_TF_STATE:-/var/lib/dativo-tf}
if [[ ! -e $state/booted ]]; then
  mkdir -p "$state" && touch "$state/booted" || fail "cannot write $state"
  scheduled=$(attr dativo-scheduled) || scheduled=false
  if [[ $scheduled == true ]]; then
    echo "dativo-tf: first boot of a scheduled job's VM: not running the job; the instance schedule starts it"
    exit 0
  fi
fi

raw=$(attr dativo-image) || fail "cannot read dativo-image from the metadata"
image=$(decode "$raw") && [[ -n $image ]] || fail "bad dativo-image"
timeout_seconds=$(attr dativo-timeout-seconds) || fail "cannot read dativo-timeout-seconds"
max_attempts=$(attr dativo-max-attempts) || fail "cannot read dativo-max-attempts"
[[ $timeout_seconds =~ ^[1-9][0-9]*$ && $max_attempts =~ ^[1-9][0-9]*$ ]] || fail "bad timeout or attempt count"

raw=$(attr dativo-args) || fail "cannot read dativo-args"
args=()
for word in $raw; do
  value=$(decode "$word") || fail "bad dativo-args"
  args+=("$value")
done

# Environment variables reach the container by name only (-e NAME), so their values stay out of argv.
raw=$(attr dativo-env) || fail "cannot read dativo-env"
env_names=()
for pair in $raw; do
  name=${pair%%=*}
  [[ $name =~ ^[A-Z_][A-Z0-9_]*$ ]] || fail "bad variable name in dativo-env"
  value=$(decode "${pair#*=}") || fail "bad value for $name"
  export "$name=$value"
  env_names+=(-e "$name")
done

# Secrets (NAME=projects/P/secrets/S/versions/V), read from Secret Manager as the VM's service account.
# Container-Optimized OS has no gcloud: this is `gcloud secrets versions access` through the REST API.
secrets=$(attr dativo-secrets) || secrets=""
if [[ -n $secrets ]]; then
  token=$(meta service-accounts/default/token | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  [[ -n $token ]] || fail "cannot get an access token for Secret Manager"
  for pair in $secrets; do
    name=${pair%%=*}
    ref=${pair#*=}
    [[ $name =~ ^[A-Z_][A-Z0-9_]*$ && $ref =~ ^projects/[a-z0-9.:-]+/secrets/[A-Za-z0-9_-]+/versions/[a-z0-9]+$ ]] \
      || fail "bad entry in dativo-secrets"
    data=$(curl -sSf --retry 5 -H "Authorization: Bearer $token" \
      "https://secretmanager.googleapis.com/v1/$ref:access" | sed -n 's/.*"data" *: *"\([^"]*\)".*/\1/p')
    [[ -n $data ]] || fail "cannot read $ref for $name"
    value=$(decode "$data") || fail "bad secret payload for $name"
    export "$name=$value"
    env_names+=(-e "$name")
  done
fi

# Private images in Artifact Registry / Container Registry: docker logs in with the VM's service account.
export HOME=/run/dativo-tf
mkdir -p "$HOME"
registry=${image%%/*}
case $registry in
  *-docker.pkg.dev | gcr.io | *.gcr.io)
    docker-credential-gcr configure-docker --registries="$registry" >/dev/null || fail "cannot configure $registry"
    ;;
esac

# Container logs go straight to Cloud Logging (the gcplogs driver), so --rm loses nothing. timeout_seconds
# limits one attempt; a timed-out attempt's container is removed before the next one starts.
for ((attempt = 1; attempt <= max_attempts; attempt++)); do
  echo "dativo-tf: attempt $attempt of $max_attempts (timeout ${timeout_seconds}s)"
  docker rm -f dativo-job >/dev/null 2>&1
  if timeout -k 60s "${timeout_seconds}s" docker run --rm --name dativo-job --log-driver=gcplogs \
    "${env_names[@]}" "$image" "${args[@]}"; then
    exit 0
  fi
done
fail "the job failed after $max_attempts attempt(s)"

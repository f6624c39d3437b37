#!/bin/sh
# Registers Cordon's Temporal namespace once the server answers; does nothing if it exists.
set -eu
namespace=${DEFAULT_NAMESPACE:-default}

attempt=0
until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do
  attempt=$((attempt + 1))
  [ "$attempt" -lt 30 ] || { echo "Temporal at $TEMPORAL_ADDRESS is not healthy"; exit 1; }
  sleep 2
done
temporal operator namespace describe --namespace "$namespace" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create --namespace "$namespace" --retention "${NAMESPACE_RETENTION:-30d}" --address "$TEMPORAL_ADDRESS"
echo "namespace $namespace is registered"

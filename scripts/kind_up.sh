#!/usr/bin/env bash
# `make kind-up`: Augur on a local kind cluster, for users with a Docker engine.
#   kind cluster → KubeRay (its Helm chart) → the decision image (`bentoml containerize`,
#   `kind load`) → CRDs → Redis → the operator → model versions on a volume → features in
#   Redis → a sample DecisionService answering /decide.
# Needs docker, kind, helm and kubectl on PATH, and `make demo` run once (it trains the
# versions and materializes the features this pushes). Not run in CI here: no Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${AUGUR_KIND_CLUSTER:-augur}
IMAGE=augur-decision:0.1.0
KUBERAY_VERSION=1.5.0
export AUGUR_HOME=${AUGUR_HOME:-$PWD/.augur}
export BENTOML_HOME=${BENTOML_HOME:-$AUGUR_HOME/bentoml}
AUGUR=.venv/bin/augur

for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-up needs $tool on PATH" >&2; exit 1; }
done
[ -x "$AUGUR" ] || { echo "run 'make demo' first (it trains the model versions)" >&2; exit 1; }

step() { printf '\n== %s\n' "$*"; }

step "kind cluster '$CLUSTER'"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
kubectl config use-context "kind-$CLUSTER"

step "KubeRay $KUBERAY_VERSION (TuningJobs run as RayJobs)"
helm repo add kuberay https://ray-project.github.io/kuberay-helm/ >/dev/null 2>&1 || true
helm upgrade --install kuberay-operator kuberay/kuberay-operator --version "$KUBERAY_VERSION" \
  --namespace kuberay --create-namespace --wait

step "the decision image ($IMAGE) from the Bento"
make bento
.venv/bin/bentoml containerize decision_service:latest --image-tag "$IMAGE"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "CRDs (helm/augur/crds) and the operator"
kubectl apply --server-side -f helm/augur/crds
kubectl apply -f - <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: augur-operator, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: augur-operator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: augur-operator, namespace: default}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: augur-operator, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: augur-operator}}
  template:
    metadata: {labels: {app: augur-operator}}
    spec:
      serviceAccountName: augur-operator
      containers:
        - name: operator
          image: $IMAGE
          command: [augur, operator, run]
          ports: [{name: health, containerPort: 8080}]
          livenessProbe: {httpGet: {path: /healthz, port: health}}
EOF

step "Redis (the online store) and the features"
kubectl create deployment augur-redis --image=redis:7 --port=6379 --dry-run=client -o yaml | kubectl apply -f -
kubectl expose deployment augur-redis --port=6379 --dry-run=client -o yaml | kubectl apply -f -
kubectl create secret generic augur-redis --from-literal=url=augur-redis:6379 \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl rollout status deployment/augur-redis --timeout=120s
kubectl port-forward service/augur-redis 16379:6379 >/dev/null 2>&1 &
forward=$!
trap 'kill $forward 2>/dev/null || true' EXIT
sleep 2
AUGUR_ONLINE_STORE=redis AUGUR_REDIS_URL=127.0.0.1:16379 "$AUGUR" features materialize

step "model versions on a volume (the DecisionService's modelStore)"
TAGS=$(.venv/bin/python -c "import bentoml
ms = sorted(bentoml.models.list('augur-ensemble'), key=lambda m: m.creation_time, reverse=True)
print(' '.join(str(m.tag) for m in ms[:2]))")  # the two newest versions
store=$(mktemp -d)
# shellcheck disable=SC2086
"$AUGUR" models push $TAGS --to "$store"
kubectl apply -f - <<EOF
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: augur-models}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: augur-models-loader}
spec:
  containers: [{name: load, image: busybox, command: [sleep, "600"], volumeMounts: [{name: m, mountPath: /models}]}]
  volumes: [{name: m, persistentVolumeClaim: {claimName: augur-models}}]
EOF
kubectl wait --for=condition=Ready pod/augur-models-loader --timeout=120s
kubectl cp "$store/." augur-models-loader:/models
kubectl delete pod augur-models-loader --wait=false

step "a sample DecisionService"
read -r primary canary <<<"$TAGS"
kubectl apply -f - <<EOF
apiVersion: augur.dev/v1alpha1
kind: DecisionService
metadata: {name: sample}
spec:
  versions:
    - {name: stable, modelTag: $primary, weight: 80}
    - {name: canary, modelTag: ${canary:-$primary}, weight: 20}
  modelStore: {pvc: {claimName: augur-models}}
  featureStore: {redisUrl: {name: augur-redis, key: url}}
  image: $IMAGE
EOF
kubectl wait --for=condition=Ready decisionservice/sample --timeout=300s
kubectl get decisionservices
echo
echo "try: kubectl port-forward service/sample 3000:80 & curl -s localhost:3000/decide -d '{\"symbol\": \"EURUSD\"}'"
echo "remove: kind delete cluster --name $CLUSTER"

"""The pinned versions of every real component the k8s test tier runs."""

KUBERNETES = "v1.37.2"
ETCD = "v3.7.4"
KWOK = "v0.8.0"
HELM = "v3.22.1"
KUBERAY = "v1.5.0"
PROMETHEUS_OPERATOR = "v0.85.0"
# The PromQL parser the chart's alert rules and dashboard queries are checked with
# (tests/k8s/promql/go.mod pins it; this names it for the stamp).
PROMETHEUS = "v0.316.0"

# The three binaries built from tests/k8s/cluster/go.mod (by its `tool` lines).
KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")

# Built with `go install pkg@version`: (binary, package, version).
GO_INSTALLED = (
    ("kwok", "sigs.k8s.io/kwok/cmd/kwok", KWOK),
    ("helm", "helm.sh/helm/v3/cmd/helm", HELM),
)

KUBERAY_MODULE = "github.com/ray-project/kuberay/ray-operator"
KWOK_MODULE = "sigs.k8s.io/kwok"
# Its CRDs (ServiceMonitor, PodMonitor, PrometheusRule) are in the module zip, under
# example/prometheus-operator-crd/: the chart's observability objects install against them.
PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"

{{/*
Names, labels and the checks every template shares.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "augur.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object name: fullnameOverride, else "<release>-<name>" (just the
release name when it already contains the chart name). */}}
{{- define "augur.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "augur.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* One helper per object name. */}}
{{- define "augur.operator.fullname" -}}
{{- printf "%s-operator" (include "augur.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "augur.operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "augur.operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Cluster-scoped, so it names the release's namespace too: two releases of the same
name in different namespaces must not share one ClusterRole. */}}
{{- define "augur.operator.clusterRoleName" -}}
{{- printf "%s-%s" (include "augur.operator.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "augur.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "augur.labels" -}}
helm.sh/chart: {{ include "augur.chart" . }}
{{ include "augur.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: augur
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels a selector matches on: never change them between releases (a Deployment's
selector is immutable). */}}
{{- define "augur.selectorLabels" -}}
app.kubernetes.io/name: {{ include "augur.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "augur.operator.labels" -}}
{{ include "augur.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "augur.operator.selectorLabels" -}}
{{ include "augur.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "augur.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Checks values.schema.json cannot express (they relate two values). Each failure names the
value, says what is wrong and what to set instead.
*/}}
{{- define "augur.validateConfig" -}}
{{- $op := .Values.operator -}}
{{- if and (gt (int $op.replicas) 1) (not $op.peering.name) -}}
{{- fail (printf "operator.peering.name is empty with operator.replicas=%v: standalone replicas would all act on the same resources. Set operator.peering.name (e.g. augur) or operator.replicas=1." $op.replicas) -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.name is empty with serviceAccount.create=false: name the existing ServiceAccount the operator runs as." -}}
{{- end -}}
{{- if ne (len $op.watchNamespaces) (len (uniq $op.watchNamespaces)) -}}
{{- fail (printf "operator.watchNamespaces=%v names a namespace twice: list each once." $op.watchNamespaces) -}}
{{- end -}}
{{- end -}}

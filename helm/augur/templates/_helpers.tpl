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

{{/* ---------------------------------------------------------------- the parts beside
the operator: Redis, the feature jobs, retraining, observability. */}}

{{- define "augur.component.fullname" -}}
{{- printf "%s-%s" (include "augur.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of a component: include "augur.componentLabels" (dict "root" $ "component" "redis") */}}
{{- define "augur.componentLabels" -}}
{{ include "augur.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "augur.componentSelectorLabels" -}}
{{ include "augur.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "augur.redis.fullname" -}}
{{- include "augur.component.fullname" (dict "root" . "name" "redis") -}}
{{- end -}}

{{/* True (non-empty) when the chart knows a Redis: its own or an external one. */}}
{{- define "augur.redis.configured" -}}
{{- if or .Values.redis.enabled .Values.redis.external.url .Values.redis.external.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* The Secret and key holding the Redis connection string (Feast's format). */}}
{{- define "augur.redis.urlSecretName" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
{{- .Values.redis.external.existingSecret -}}
{{- else -}}
{{- include "augur.redis.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "augur.redis.urlSecretKey" -}}
{{- if and (not .Values.redis.enabled) .Values.redis.external.existingSecret -}}
{{- .Values.redis.external.existingSecretKey -}}
{{- else -}}
redis-url
{{- end -}}
{{- end -}}

{{/* The restricted security context of every container of the chart; `uid` the user. */}}
{{- define "augur.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "augur.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* One step of the feature jobs (features.yaml): a container running `command` with
AUGUR_HOME on the home claim at `home`, /tmp for the rest and, given a `barsDir`, the claim
of bar files (features.bars.files) read-only there.
include "augur.featureStep" (dict "root" $ "name" "build" "command" (list …) "home" … "barsDir" …) */}}
{{- define "augur.featureStep" -}}
{{- $root := .root -}}
{{- $f := $root.Values.features -}}
{{- $uid := $root.Values.operator.runAsUser -}}
- name: {{ .name }}
  image: {{ include "augur.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: {{ toJson .command }}
  env:
    - name: AUGUR_HOME
      value: {{ .home }}
    - name: AUGUR_ONLINE_STORE
      value: redis
    - name: AUGUR_REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "augur.redis.urlSecretName" $root }}
          key: {{ include "augur.redis.urlSecretKey" $root }}
    {{- with $f.featureRepo }}
    - name: AUGUR_FEATURE_REPO
      value: {{ . | quote }}
    {{- end }}
    - name: HOME
      value: /tmp
    {{- /* numba caches the feature kernels beside their module, read-only in the image */}}
    - name: NUMBA_CACHE_DIR
      value: /tmp/numba
    - name: PYTHONDONTWRITEBYTECODE
      value: "1"
    - name: FEAST_USAGE
      value: "False"
    {{- with include "augur.otelEnv" (dict "root" $root "component" "materialize") | trim }}
    {{- . | nindent 4 }}
    {{- end }}
  securityContext:
    {{- include "augur.containerSecurityContext" (dict "uid" $uid) | nindent 4 }}
  resources:
    {{- toYaml $f.materialize.resources | nindent 4 }}
  volumeMounts:
    - name: home
      mountPath: {{ .home }}
    {{- with .barsDir }}
    - name: bars
      mountPath: {{ . }}
      readOnly: true
      {{- with $f.bars.files.subPath }}
      subPath: {{ . }}
      {{- end }}
    {{- end }}
    - name: tmp
      mountPath: /tmp
    {{- if $f.featureStoreConfig }}
    - name: feast
      mountPath: /etc/augur/feast
      readOnly: true
    {{- end }}
{{- end -}}

{{/* OpenTelemetry settings (observability.otel) as container env entries; empty without
an endpoint. AUGUR_OTLP_ENDPOINT is the traces URL Augur's own tracer exports to. */}}
{{- define "augur.otelEnv" -}}
{{- $otel := .root.Values.observability.otel -}}
{{- if $otel.endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $otel.protocol | quote }}
- name: AUGUR_OTLP_ENDPOINT
  value: {{ printf "%s/v1/traces" (trimSuffix "/" $otel.endpoint) | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ printf "augur-%s" .component | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $otel.samplerRatio | quote }}
{{- $attrs := list (printf "service.namespace=%s" .root.Release.Namespace) (printf "k8s.namespace.name=%s" .root.Release.Namespace) }}
{{- range $k, $v := $otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end -}}

{{/* The same settings for the serving pods the operator renders, as the JSON object of
AUGUR_OPERATOR_SERVING_ENV (service name augur-decision; resource attributes only those of
observability.otel.resourceAttributes); "" without an endpoint. */}}
{{- define "augur.servingOtelEnvJson" -}}
{{- $env := dict -}}
{{- range (include "augur.otelEnv" (dict "root" .root "component" "decision") | fromYamlArray) -}}
{{- $_ := set $env .name .value -}}
{{- end -}}
{{- /* serving pods live in other namespaces: only the attributes the values give */ -}}
{{- $_ := unset $env "OTEL_RESOURCE_ATTRIBUTES" -}}
{{- $attrs := list -}}
{{- range $k, $v := .root.Values.observability.otel.resourceAttributes -}}
{{- $attrs = append $attrs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- if and $env $attrs }}{{ $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) }}{{ end -}}
{{- if $env }}{{ toJson $env }}{{ end -}}
{{- end -}}

{{/* The namespaces the ServiceMonitor and PodMonitor look in: a list, empty for all. */}}
{{- define "augur.monitoredNamespaces" -}}
{{- $ns := .Values.observability.serviceMonitor.namespaces | default .Values.operator.watchNamespaces -}}
{{- toJson ($ns | default list) -}}
{{- end -}}

{{/* Checks between the values beside the operator (the schema cannot relate them). */}}
{{- define "augur.validateExtras" -}}
{{- $r := .Values.redis -}}
{{- if and $r.enabled (or $r.external.url $r.external.existingSecret) -}}
{{- fail "redis.enabled=true and redis.external are both set: run Redis in the chart (redis.enabled) or name an existing one (redis.external.url / existingSecret), not both." -}}
{{- end -}}
{{- if and .Values.features.materialize.enabled (not (include "augur.redis.configured" .)) -}}
{{- fail "features.materialize.enabled=true needs a Redis online store: set redis.enabled=true, or redis.external.url / redis.external.existingSecret." -}}
{{- end -}}
{{- $bars := .Values.features.bars -}}
{{- if and .Values.features.materialize.enabled (eq $bars.source "files") (not $bars.files.existingClaim) -}}
{{- fail "features.materialize.enabled=true with features.bars.source=files needs features.bars.files.existingClaim: the PersistentVolumeClaim your bar files (<SYMBOL>.csv or .parquet) land on. For a demo on the image's sample bars set features.bars.source=sample." -}}
{{- end -}}
{{- if .Values.retraining.enabled -}}
{{- if not .Values.retraining.storageURI -}}
{{- fail "retraining.enabled=true needs retraining.storageURI (TuningJob spec.storageURI, e.g. s3://bucket/augur/tuning)." -}}
{{- end -}}
{{- if not .Values.retraining.study -}}
{{- fail "retraining.enabled=true needs retraining.study: {inline: {...}} or {configMapRef: {name: ..., key: ...}}." -}}
{{- end -}}
{{- end -}}
{{- $c := .Values.streamConsumer -}}
{{- if $c.enabled -}}
{{- if not (include "augur.redis.configured" .) -}}
{{- fail "streamConsumer.enabled=true needs the Redis holding the stream and the online features: set redis.enabled=true, or redis.external.url / redis.external.existingSecret." -}}
{{- end -}}
{{- $st := .Values.features.storage -}}
{{- if not (or .Values.features.materialize.enabled $st.existingClaim) -}}
{{- fail "streamConsumer.enabled=true needs an AUGUR_HOME with the features built and applied: set features.materialize.enabled=true (the CronJob fills the chart's claim), or features.storage.existingClaim (a claim already holding them)." -}}
{{- end -}}
{{- if and (not $st.existingClaim) (eq $st.accessMode "ReadWriteOncePod") -}}
{{- fail "streamConsumer.enabled=true with features.storage.accessMode=ReadWriteOncePod: the consumers and the feature jobs all mount AUGUR_HOME. Set features.storage.accessMode=ReadWriteMany (or ReadWriteOnce with streamConsumer.replicas=1)." -}}
{{- end -}}
{{- if and (gt (int $c.replicas) 1) (not $st.existingClaim) (ne $st.accessMode "ReadWriteMany") -}}
{{- fail (printf "streamConsumer.replicas=%v share AUGUR_HOME (features.storage), but features.storage.accessMode=%s: a claim pods on different nodes cannot all mount. Set features.storage.accessMode=ReadWriteMany (a StorageClass that offers it, e.g. NFS or CephFS), or streamConsumer.replicas=1." $c.replicas $st.accessMode) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.decisionService.enabled (not (include "augur.redis.configured" .)) -}}
{{- fail "decisionService.enabled=true needs a Redis online store for its features: set redis.enabled=true, or redis.external.url / redis.external.existingSecret." -}}
{{- end -}}
{{- end -}}

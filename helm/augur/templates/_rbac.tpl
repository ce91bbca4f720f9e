{{/*
The operator's RBAC rules: the least it needs, named resource by resource and verb by verb
(no "*"). "create" beside "patch": server-side apply creates an object that does not exist.
*/}}

{{/* Rules in every namespace it watches: its own resources and the children it makes. */}}
{{- define "augur.operator.namespacedRules" -}}
# DecisionServices and TuningJobs: kopf watches them and keeps its progress in annotations;
# a TuningJob's promotion patches its DecisionService's spec.
- apiGroups: [augur.dev]
  resources: [decisionservices, tuningjobs]
  verbs: [get, list, watch, patch]
- apiGroups: [augur.dev]
  resources: [decisionservices/status, tuningjobs/status]
  verbs: [patch]
# A DecisionService's serving Deployment (watched: its events refresh the status).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# Routing-table ConfigMaps (and a TuningJob's study), Services.
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch]
# A TuningJob's KubeRay RayJob (watched: its events refresh the status).
- apiGroups: [ray.io]
  resources: [rayjobs]
  verbs: [get, list, watch, create, patch]
# Read-only: the operator checks that the Secret keys a spec names exist.
- apiGroups: [""]
  resources: [secrets]
  verbs: [list]
# kopf posts Events on the resources it handles.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* Only when watching every namespace. */}}
{{- define "augur.operator.clusterRules" -}}
# The ClusterKopfPeering the replicas share (the operator creates it at startup).
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, create, patch]
# kopf notices CRDs installed or removed after it started.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/* Named namespaces, with rbac.clusterDiscovery: read-only, what kopf lists at startup to
see which of its namespaces and CRDs exist (no access to any object in them). */}}
{{- define "augur.operator.discoveryRules" -}}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/* Only per watched namespace: the namespace's KopfPeering (the chart creates it). */}}
{{- define "augur.operator.peeringRules" -}}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end -}}

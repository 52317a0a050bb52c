{{/* The chart's name, or nameOverride. */}}
{{- define "winapp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of the release's objects: fullnameOverride, else the release name when it already
contains the chart's name, else <release>-<name>. At most 63 characters (a DNS label).
*/}}
{{- define "winapp-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "winapp-operator.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A name derived from the full name: include "winapp-operator.suffixed" (list . "metrics") */}}
{{- define "winapp-operator.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "winapp-operator.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "winapp-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the operator's pods; never change them on upgrade. */}}
{{- define "winapp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "winapp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "winapp-operator.labels" -}}
helm.sh/chart: {{ include "winapp-operator.chart" . }}
{{ include "winapp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: winapp-operator
{{- end }}

{{- define "winapp-operator.serviceAccountName" -}}
{{- include "winapp-operator.fullname" . }}
{{- end }}

{{/* repository@digest when a digest is set, else repository:tag (default: appVersion). */}}
{{- define "winapp-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The operator's rights on namespaced objects (config/rbac/cluster_role.yaml): in its ClusterRole
when it watches every namespace, in a Role of watchNamespace when it watches one.
*/}}
{{- define "winapp-operator.namespacedRules" -}}
# The resource it reconciles: read, add/remove its finalizer, write status.
- apiGroups: [winapp.dev]
  resources: [windowsapps]
  verbs: [get, list, watch, patch]
- apiGroups: [winapp.dev]
  resources: [windowsapps/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: [winapp.dev]
  resources: [windowsapps/finalizers]
  verbs: [update]
# Namespaced children.
- apiGroups: [apps]
  resources: [deployments, daemonsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, configmaps, serviceaccounts, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [rolebindings]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
# Each app's PodDisruptionBudget (node drains evict its pods one at a time).
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# Events on WindowsApps.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# Why pods are not available: read only for apps whose rollout is stuck (one list of the app's
# pods, the events of a few of them), and where the pods of an app whose budget allows no
# eviction run while a Windows node is cordoned (one list); never watched.
- apiGroups: [""]
  resources: [pods, events]
  verbs: [list]
{{- end }}

{{/* The rights that are cluster-wide whatever the operator watches. */}}
{{- define "winapp-operator.clusterRules" -}}
# Cluster-scoped children.
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  verbs: [get, list, watch, create, patch, delete]
# gMSA credspecs: manage generated ones, see referenced ones (and their annotation
# winapp.dev/allowed-namespaces); `use`, because Kubernetes lets a subject grant only
# permissions it holds (far narrower than `bind` or `escalate`). Granted only where the
# platform team's annotations allow.
- apiGroups: [windows.k8s.io]
  resources: [gmsacredentialspecs]
  verbs: [get, list, watch, create, patch, delete, use]
# Namespaces, metadata only: their annotations (winapp.dev/gmsa-accounts, winapp.dev/allow, ...)
# say what their apps may do; watched, so that a change takes effect at once.
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
# Placement: which Windows nodes and builds exist.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
# RuntimeClasses that apps name: their scheduling is part of the pods' placement.
- apiGroups: [node.k8s.io]
  resources: [runtimeclasses]
  verbs: [get, list, watch]
# Whether the SMB CSI driver is registered on the node of a stuck pod of an app with SMB
# volumes: one GET per node, only while the diagnosis reads the pods; never listed or watched.
- apiGroups: [storage.k8s.io]
  resources: [csinodes]
  verbs: [get]
# Whether the GMSACredentialSpec CRD is installed.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  resourceNames: [gmsacredentialspecs.windows.k8s.io]
  verbs: [get]
{{- end }}

{{/* A map as KEY=VALUE,KEY=VALUE, sorted by key. */}}
{{- define "winapp-operator.keyValues" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
Helpers. Every one takes the chart's own scope (the top-level context when this chart is
rendered, or .Subcharts.micro-sidecar when a parent chart includes the sidecar template),
unless it says otherwise.
*/}}

{{/* Chart name, for app.kubernetes.io/name. */}}
{{- define "micro-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "micro-sidecar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A name derived from the fullname: (dict "s" <scope> "suffix" "registry"). */}}
{{- define "micro-sidecar.childName" -}}
{{- $base := include "micro-sidecar.fullname" .s | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base .suffix -}}
{{- end -}}

{{/* The registry's Deployment and Service name. */}}
{{- define "micro-sidecar.registry.name" -}}
{{- include "micro-sidecar.childName" (dict "s" . "suffix" "registry") -}}
{{- end -}}

{{/* The chart's own etcd: StatefulSet, headless Service (member names) and client Service. */}}
{{- define "micro-sidecar.etcd.name" -}}
{{- include "micro-sidecar.childName" (dict "s" . "suffix" "etcd") -}}
{{- end -}}

{{/* true when the registry uses etcd and the chart deploys it (no etcd.endpoints given). */}}
{{- define "micro-sidecar.etcd.deploy" -}}
{{- if and .Values.registry.enabled (eq .Values.registry.store "etcd") (not .Values.etcd.endpoints) -}}true{{- end -}}
{{- end -}}

{{- define "micro-sidecar.etcd.scheme" -}}
{{- if .Values.etcd.tls.existingSecret -}}https{{- else -}}http{{- end -}}
{{- end -}}

{{/* DNS name of member I of the chart's etcd: (dict "s" <scope> "i" I). */}}
{{- define "micro-sidecar.etcd.member" -}}
{{- $n := include "micro-sidecar.etcd.name" .s -}}
{{- printf "%s-%d.%s.%s.svc.%s" $n (int .i) $n .s.Release.Namespace .s.Values.clusterDomain -}}
{{- end -}}

{{/* --etcd-endpoints: etcd.endpoints, or the chart's own members' client URLs. */}}
{{- define "micro-sidecar.etcd.endpoints" -}}
{{- if .Values.etcd.endpoints -}}
{{- join "," .Values.etcd.endpoints -}}
{{- else -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.etcd.cluster.replicas) -}}
{{- $urls = append $urls (printf "%s://%s:%d" (include "micro-sidecar.etcd.scheme" $) (include "micro-sidecar.etcd.member" (dict "s" $ "i" $i)) (int64 $.Values.etcd.cluster.clientPort)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}
{{- end -}}

{{- define "micro-sidecar.etcd.image" -}}
{{- $img := .Values.etcd.cluster.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Pod anti-affinity by node: (dict "mode" preferred|required|none "labels" <selector labels
as YAML>). Renders the affinity object's content, or nothing for none.
*/}}
{{- define "micro-sidecar.antiAffinity" -}}
{{- if eq .mode "required" }}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- .labels | nindent 10 }}
{{- else if eq .mode "preferred" }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- .labels | nindent 12 }}
{{- end }}
{{- end -}}

{{/* host:port the sidecars dial (--registry / MICRO_REGISTRY). */}}
{{- define "micro-sidecar.registry.address" -}}
{{- if .Values.sidecar.registryAddress -}}
{{- .Values.sidecar.registryAddress -}}
{{- else -}}
{{- if not .Values.registry.enabled -}}
{{- fail "registry.enabled=false: set sidecar.registryAddress (host:port of the registry the sidecars use)" -}}
{{- end -}}
{{- printf "%s.%s.svc.%s:%d" (include "micro-sidecar.registry.name" .) .Release.Namespace .Values.clusterDomain (int64 .Values.registry.port) -}}
{{- end -}}
{{- end -}}

{{- define "micro-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "micro-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest. */}}
{{- define "micro-sidecar.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "micro-sidecar.version" -}}
{{- default .Chart.AppVersion .Values.image.tag | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: (dict "s" <scope> "component" "registry" ["name" "echo-a"]). "name"
replaces app.kubernetes.io/name (the demo apps are applications of their own).
*/}}
{{- define "micro-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ .name | default (include "micro-sidecar.name" .s) }}
app.kubernetes.io/instance: {{ .s.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All recommended labels: same dict as selectorLabels. */}}
{{- define "micro-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .s.Chart.Name .s.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "micro-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ include "micro-sidecar.version" .s | quote }}
app.kubernetes.io/part-of: micro-sidecar
app.kubernetes.io/managed-by: {{ .s.Release.Service }}
{{- with .s.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The hardened container securityContext every container of this chart uses. */}}
{{- define "micro-sidecar.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod-level securityContext for the pods this chart owns. */}}
{{- define "micro-sidecar.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* "true" when any token is configured (a Secret is used), else "". */}}
{{- define "micro-sidecar.tokens.enabled" -}}
{{- $t := .Values.tokens -}}
{{- if or $t.existingSecret $t.apiToken $t.appToken $t.meshToken -}}true{{- end -}}
{{- end -}}

{{/*
Token env entries: (dict "s" <scope> "which" (list "api" "app" "mesh")). Values come from
tokens.existingSecret (keys from tokens.existingSecretKeys) or from the chart's
<fullname>-tokens Secret (only the tokens that are set).
*/}}
{{- define "micro-sidecar.tokens.env" -}}
{{- $s := .s -}}
{{- $t := $s.Values.tokens -}}
{{- $envNames := dict "api" "MICRO_API_TOKEN" "app" "MICRO_APP_TOKEN" "mesh" "MICRO_MESH_TOKEN" -}}
{{- $given := dict "api" $t.apiToken "app" $t.appToken "mesh" $t.meshToken -}}
{{- range .which }}
{{- if $t.existingSecret }}
{{- $key := index $t.existingSecretKeys . }}
{{- if $key }}
- name: {{ index $envNames . }}
  valueFrom:
    secretKeyRef:
      name: {{ $t.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- else if index $given . }}
- name: {{ index $envNames . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "micro-sidecar.childName" (dict "s" $s "suffix" "tokens") }}
      key: {{ index $envNames . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Refuses settings the target cluster cannot run. Takes the scope; uses
.Capabilities.KubeVersion (helm template: --kube-version).
*/}}
{{- define "micro-sidecar.validate" -}}
{{- $kube := .Capabilities.KubeVersion.Version -}}
{{- if and .Values.sidecar.native (semverCompare "<1.29.0-0" $kube) -}}
{{- fail (printf "sidecar.native=true needs Kubernetes >= 1.29 (native sidecar containers); this cluster is %s: set sidecar.native=false" $kube) -}}
{{- end -}}
{{- if and (eq .Values.sidecar.preStop.mode "sleep") (semverCompare "<1.30.0-0" $kube) -}}
{{- fail (printf "sidecar.preStop.mode=sleep needs Kubernetes >= 1.30 (sleep lifecycle action); this cluster is %s: use mode=exec" $kube) -}}
{{- end -}}
{{- if and (ne .Values.registry.store "etcd") (gt (int64 .Values.registry.replicaCount) 1) -}}
{{- fail (printf "registry.replicaCount=%d needs registry.store=etcd: memory replicas would each know only their own sidecars" (int64 .Values.registry.replicaCount)) -}}
{{- end -}}
{{- if and .Values.etcd.tls.existingSecret .Values.etcd.endpoints -}}
{{- range .Values.etcd.endpoints -}}
{{- if not (hasPrefix "https://" .) -}}
{{- fail (printf "etcd.tls.existingSecret is set but etcd.endpoints has %s: use https:// URLs" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $pdb := .Values.registry.podDisruptionBudget -}}
{{- if and $pdb.enabled (eq (kindIs "invalid" $pdb.minAvailable) (kindIs "invalid" $pdb.maxUnavailable)) -}}
{{- fail "registry.podDisruptionBudget: set exactly one of minAvailable and maxUnavailable (the other null)" -}}
{{- end -}}
{{- end -}}

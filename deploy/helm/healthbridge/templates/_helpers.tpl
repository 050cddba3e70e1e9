{{/* The chart's name. */}}
{{- define "healthbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name, 63 characters at most. */}}
{{- define "healthbridge.fullname" -}}
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

{{- define "healthbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "healthbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "healthbridge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "healthbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* REGISTRY/REPOSITORY:TAG or @DIGEST. */}}
{{- define "healthbridge.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry $repo -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "healthbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "healthbridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* "true" when the Role is wanted: rbac.create, or unset and a kubernetesPod check configured. */}}
{{- define "healthbridge.rbac" -}}
{{- if kindIs "invalid" .Values.rbac.create -}}
{{- $pod := false -}}
{{- range .Values.config.checks -}}{{- if hasKey . "kubernetesPod" -}}{{- $pod = true -}}{{- end -}}{{- end -}}
{{- $pod -}}
{{- else -}}
{{- .Values.rbac.create -}}
{{- end -}}
{{- end -}}

{{/* The config file as rendered into the ConfigMap. */}}
{{- define "healthbridge.config" -}}
{{- $c := deepCopy .Values.config -}}
{{- if .Values.reload.enabled -}}{{- $_ := set $c "watchConfig" true -}}{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{/*
healthbridge as a sidecar container of another chart's pod. Use it in that
chart's extraContainers (or containers) as

  {{- include "healthbridge.sidecar" (dict "configMap" "my-healthbridge-config" "image" "healthbridge:0.1.0") | nindent 8 }}

with a ConfigMap holding healthbridge.yaml; the pod's readinessProbe can
then be httpGet :8642/readyz. Keys: configMap (required), image, port
(8642), name ("healthbridge").
*/}}
{{- define "healthbridge.sidecar" -}}
- name: {{ .name | default "healthbridge" }}
  image: {{ .image | default "healthbridge:0.1.0" }}
  imagePullPolicy: IfNotPresent
  env:
    - {name: HEALTHBRIDGE_CONFIG, value: /etc/healthbridge/healthbridge.yaml}
    - {name: HEALTHBRIDGE_CONTAINER_NAME, value: {{ .name | default "healthbridge" }}}
  ports:
    - {name: health, containerPort: {{ .port | default 8642 }}, protocol: TCP}
  livenessProbe:
    httpGet: {path: /livez, port: health}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
  resources:
    requests: {cpu: 10m, memory: 24Mi}
    limits: {cpu: 100m, memory: 64Mi}
  volumeMounts:
    - {name: {{ .name | default "healthbridge" }}-config, mountPath: /etc/healthbridge, readOnly: true}
{{- end -}}

{{/*
The volume the sidecar mounts, for the same pod's volumes:

  {{- include "healthbridge.sidecarVolume" (dict "configMap" "my-healthbridge-config") | nindent 8 }}
*/}}
{{- define "healthbridge.sidecarVolume" -}}
- name: {{ .name | default "healthbridge" }}-config
  configMap: {name: {{ required "healthbridge.sidecarVolume: configMap is required" .configMap }}, defaultMode: 0444}
{{- end -}}

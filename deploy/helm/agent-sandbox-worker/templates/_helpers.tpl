{{/* Labels on every object of the release. */}}
{{- define "asw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: agent-sandbox
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agent-sandbox
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "operator"). */}}
{{- define "asw.selectorLabels" -}}
app.kubernetes.io/name: agent-sandbox
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Full labels of one component. */}}
{{- define "asw.componentLabels" -}}
{{ include "asw.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: (dict "root" $ "image" .Values.operator.image). Registry and tag fall back to the
     chart-wide image.registry and the chart's appVersion. */}}
{{- define "asw.image" -}}
{{- $registry := .image.registry | default .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{ printf "%s/%s:%s" $registry .image.repository $tag }}
{{- else -}}
{{ printf "%s:%s" .image.repository $tag }}
{{- end -}}
{{- end }}

{{/* The Secret holding admin-key and secret. */}}
{{- define "asw.credentialsSecret" -}}
{{- .Values.auth.existingSecret | default "agent-sandbox-credentials" -}}
{{- end }}

{{/* Environment of every service container: the credentials, never as flags (flags show in the pod spec). */}}
{{- define "asw.credentialsEnv" -}}
- name: AGENT_SANDBOX_ADMIN_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "asw.credentialsSecret" . }}
      key: admin-key
- name: AGENT_SANDBOX_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "asw.credentialsSecret" . }}
      key: secret
{{- end }}

{{/* In-cluster DNS name of a Service of this release. */}}
{{- define "asw.serviceHost" -}}
{{- printf "%s.%s.svc.cluster.local" .name .root.Release.Namespace -}}
{{- end }}

{{/* Data-plane base URL given to the operator. */}}
{{- define "asw.gatewayBaseUrl" -}}
{{- if .Values.operator.gatewayBaseUrl -}}
{{- .Values.operator.gatewayBaseUrl -}}
{{- else -}}
{{- $host := include "asw.serviceHost" (dict "root" . "name" "agent-sandbox-data-plane") -}}
{{- if eq (int .Values.service.port) 80 -}}
{{- printf "http://%s" $host -}}
{{- else -}}
{{- printf "http://%s:%d" $host (int .Values.service.port) -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* Pod-level fields shared by both Deployments. */}}
{{- define "asw.podCommon" -}}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .scheduling.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .scheduling.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .scheduling.affinity }}
affinity:
  {{- toYaml .scheduling.affinity | nindent 2 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "asw.selectorLabels" (dict "root" .root "component" .component) | nindent 14 }}
{{- end }}
{{- end }}

{{/* HOST:PORT of a pod-network listener: (dict "root" $ "port" 8080). IPv6 addresses get brackets. */}}
{{- define "asw.listen" -}}
{{- $host := .root.Values.listenAddress -}}
{{- if contains ":" $host -}}
{{- printf "[%s]:%d" $host (int .port) -}}
{{- else -}}
{{- printf "%s:%d" $host (int .port) -}}
{{- end -}}
{{- end }}

{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "cpuburst.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name prefix: <release>-<chart>, or <release> when it already says cpuburst. */}}
{{- define "cpuburst.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<fullname>-<suffix>", still within 63 characters. Call with (list $ "suffix"). */}}
{{- define "cpuburst.resourceName" -}}
{{- $ctx := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "cpuburst.fullname" $ctx | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{- define "cpuburst.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels for objects (not pod templates: helm.sh/chart there would roll every pod on a chart bump). */}}
{{- define "cpuburst.labels" -}}
helm.sh/chart: {{ include "cpuburst.chart" . }}
{{ include "cpuburst.podLabels" . }}
{{- end }}

{{/* Labels for pod templates: stable across chart versions. */}}
{{- define "cpuburst.podLabels" -}}
{{ include "cpuburst.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cpuburst
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cpuburst.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cpuburst.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Component-scoped label sets. Call with (list $ "operator"). */}}
{{- define "cpuburst.componentLabels" -}}
{{ include "cpuburst.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "cpuburst.componentPodLabels" -}}
{{ include "cpuburst.podLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "cpuburst.componentSelectorLabels" -}}
{{ include "cpuburst.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* ServiceAccount name of a component. Call with (list $ "operator"). */}}
{{- define "cpuburst.serviceAccountName" -}}
{{- $ctx := index . 0 }}
{{- $component := index . 1 }}
{{- $sa := (index $ctx.Values $component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "cpuburst.resourceName" (list $ctx $component)) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{- define "cpuburst.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Secret and Service names shared between templates. */}}
{{- define "cpuburst.brokerService" -}}{{ include "cpuburst.resourceName" (list . "broker") }}{{- end }}
{{- define "cpuburst.operatorSecret" -}}{{ include "cpuburst.resourceName" (list . "operator-mqtt") }}{{- end }}
{{- define "cpuburst.brokerUsersSecret" -}}{{ include "cpuburst.resourceName" (list . "broker-users") }}{{- end }}
{{- define "cpuburst.agentKeySecret" -}}{{ include "cpuburst.resourceName" (list . "agent-key") }}{{- end }}
{{- define "cpuburst.apiKeySecret" -}}{{ include "cpuburst.resourceName" (list . "broker-api-key") }}{{- end }}

{{- define "cpuburst.tlsSecret" -}}
{{- if and .Values.tls.existingSecret (not .Values.tls.certManager.enabled) }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- include "cpuburst.resourceName" (list . "broker-tls") }}
{{- end }}
{{- end }}

{{/* The URL the operator and agents use to reach the in-chart broker. */}}
{{- define "cpuburst.mqttUrl" -}}
{{- $host := printf "%s.%s.svc" (include "cpuburst.brokerService" .) .Release.Namespace }}
{{- if and .Values.tls.enabled .Values.tls.internal }}
{{- printf "mqtts://%s:%d" $host (int .Values.broker.ports.mqtts) }}
{{- else }}
{{- printf "mqtt://%s:%d" $host (int .Values.broker.ports.mqtt) }}
{{- end }}
{{- end }}

{{- define "cpuburst.clientTls" -}}
{{- if and .Values.tls.enabled .Values.tls.internal }}true{{ end }}
{{- end }}

{{- define "cpuburst.redisUrl" -}}
{{- if .Values.broker.redis.url }}
{{- .Values.broker.redis.url }}
{{- else if .Values.broker.redis.enabled }}
{{- printf "redis://%s.%s.svc:6379" (include "cpuburst.resourceName" (list . "redis")) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* Where the projected broker token is mounted in the operator and agent containers. */}}
{{- define "cpuburst.tokenDir" -}}/var/run/secrets/cpuburst{{- end }}

{{/*
Projected ServiceAccount token for the broker audience: bound to the pod (so to its node), rotated by
the kubelet. Call with (list $ mode) where mode is the file mode in decimal.
*/}}
{{- define "cpuburst.tokenVolume" -}}
{{- $ctx := index . 0 }}
{{- $t := $ctx.Values.auth.serviceAccountToken -}}
- name: broker-token
  projected:
    defaultMode: {{ index . 1 }}
    sources:
      - serviceAccountToken:
          audience: {{ $t.audience | quote }}
          expirationSeconds: {{ int $t.expirationSeconds }}
          path: token
{{- end }}

{{/* How the agents log in to the broker: mtls, key (legacy) or token. */}}
{{- define "cpuburst.agentAuth" -}}
{{- if .Values.agent.mtls.enabled }}mtls{{ else if .Values.auth.agentKey.enabled }}key{{ else }}token{{ end }}
{{- end }}

{{/* The broker's authenticator chain: a certificate first, then the token, then passwords (IoT). */}}
{{- define "cpuburst.authChain" -}}
{{- $chain := list }}
{{- if .Values.agent.mtls.enabled }}{{ $chain = append $chain "tls-cert" }}{{ end }}
{{- if or .Values.agent.enabled .Values.operator.enabled .Values.auth.serviceAccountToken.allowOtherServiceAccounts }}
{{- $chain = append $chain "k8s-token" }}
{{- end }}
{{- $chain = append $chain "password" }}
{{- if .Values.auth.agentKey.enabled }}{{ $chain = append $chain "agent-key" }}{{ end }}
{{- join "," $chain }}
{{- end }}

{{/* Checks of value combinations the schema cannot express; run from every render. */}}
{{- define "cpuburst.validate" -}}
{{- if and .Values.agent.mtls.enabled (not (and .Values.tls.enabled .Values.tls.internal)) }}
{{- fail "agent.mtls.enabled needs tls.enabled=true and tls.internal=true (agents present their certificate on the broker's mqtts port)" }}
{{- end }}
{{- if and .Values.agent.mtls.enabled .Values.auth.agentKey.enabled }}
{{- fail "agent.mtls.enabled and auth.agentKey.enabled both set: agents log in with one of them; turn the legacy agent key off" }}
{{- end }}
{{- if and .Values.agent.enabled .Values.operator.enabled (eq (include "cpuburst.serviceAccountName" (list . "agent")) (include "cpuburst.serviceAccountName" (list . "operator"))) }}
{{- fail "agent and operator must use different ServiceAccounts: the broker tells the operator from the agents by the ServiceAccount in their token" }}
{{- end }}
{{- if and (gt (int .Values.broker.replicaCount) 1) (not (include "cpuburst.redisUrl" .)) }}
{{- fail "broker.replicaCount > 1 needs shared state: set broker.redis.enabled=true or broker.redis.url" }}
{{- end }}
{{- if and .Values.broker.persistence.enabled (gt (int .Values.broker.replicaCount) 1) }}
{{- fail "broker.persistence.enabled is for the single-replica embedded store; use Redis for several replicas" }}
{{- end }}
{{- if and .Values.tls.enabled (not .Values.tls.certManager.enabled) (not .Values.tls.existingSecret) }}
{{- fail "tls.enabled needs tls.certManager.enabled=true or tls.existingSecret (a Secret with tls.crt, tls.key, ca.crt)" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name" }}
{{- end }}
{{- if and .Values.tls.requireClientCert (not .Values.tls.enabled) }}
{{- fail "tls.requireClientCert needs tls.enabled=true" }}
{{- end }}
{{- if and .Values.tls.requireClientCert .Values.tls.internal }}
{{- fail "tls.requireClientCert: the operator and agents have no client certificate; set tls.internal=false (they then use the in-cluster plaintext port, which the NetworkPolicy keeps inside the release)" }}
{{- end }}
{{- if and (gt (int .Values.operator.replicaCount) 1) (not .Values.operator.leaderElection.enabled) }}
{{- fail "operator.replicaCount > 1 needs operator.leaderElection.enabled=true (two leaders would both publish)" }}
{{- end }}
{{- end }}

{{/* Read-only Secret volume that exposes only ca.crt (clients never see the broker's key). */}}
{{- define "cpuburst.caVolume" -}}
- name: broker-ca
  secret:
    secretName: {{ include "cpuburst.tlsSecret" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}

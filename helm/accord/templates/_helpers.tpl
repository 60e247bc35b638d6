{{/* The release's names, labels and the checks the schema cannot express. */}}

{{- define "accord.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accord.fullname" -}}
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

{{- define "accord.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "accord.selectorLabels" -}}
app.kubernetes.io/name: {{ include "accord.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The server's pods, not the migration job's. */}}
{{- define "accord.serverSelectorLabels" -}}
{{ include "accord.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "accord.labels" -}}
helm.sh/chart: {{ include "accord.chart" . }}
{{ include "accord.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "accord.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "accord.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "accord.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "accord.secretName" -}}
{{- default (include "accord.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "accord.postgres" -}}
{{- if eq .Values.database.mode "postgres" }}true{{ end }}
{{- end }}

{{/* Where the binary finds what the chart mounts. */}}
{{- define "accord.configPath" -}}/etc/accord/config/accord.toml{{- end }}
{{- define "accord.secretsDir" -}}/etc/accord/secrets{{- end }}

{{/*
The bootstrap key of a chart-managed Secret: the one given, else the one the
release's Secret already holds, else a new one.
*/}}
{{- define "accord.bootstrapKey" -}}
{{- if .Values.secrets.bootstrapKey }}
{{- .Values.secrets.bootstrapKey }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "accord.fullname" .) }}
{{- $key := .Values.secrets.keys.bootstrapKey }}
{{- if and $existing $existing.data (hasKey $existing.data $key) }}
{{- index $existing.data $key | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/* The environment that selects the database, from the Secret. */}}
{{- define "accord.databaseEnv" -}}
{{- if include "accord.postgres" . }}
- name: ACCORD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: ACCORD_MIGRATION_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "accord.secretName" . }}
      key: {{ .Values.secrets.keys.migrationDatabaseUrl }}
{{- end }}
{{- end }}

{{- define "accord.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "accord.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
What the schema cannot check: the pod must outlive its preStop sleep and the
server's drain.
*/}}
{{- define "accord.validate" -}}
{{- $grace := int (default 20 .Values.config.shutdown_grace_seconds) }}
{{- $delay := 5 }}
{{- if hasKey .Values.config "drain_delay_seconds" }}
{{- $delay = int .Values.config.drain_delay_seconds }}
{{- end }}
{{- $sleep := int .Values.lifecycle.preStopSleepSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $grace $delay $sleep) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds (%d) plus config.drain_delay_seconds (%d) plus config.shutdown_grace_seconds (%d)" (int .Values.terminationGracePeriodSeconds) $sleep $delay $grace) }}
{{- end }}
{{- if and (include "accord.postgres" .) (not .Values.secrets.existingSecret) }}
{{- if not (and .Values.secrets.databaseUrl .Values.secrets.migrationDatabaseUrl) }}
{{- fail "PostgreSQL mode needs secrets.existingSecret, or both secrets.databaseUrl and secrets.migrationDatabaseUrl" }}
{{- end }}
{{- end }}
{{- end }}

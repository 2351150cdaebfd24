{{/* <release>-milvus: the lorag chart derives the same name (lorag.milvusFullname). */}}
{{- define "milvus.fullname" -}}
{{- printf "%s-milvus" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "milvus.selectorLabels" -}}
app.kubernetes.io/name: milvus
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "milvus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "milvus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lorag
app.kubernetes.io/component: vector-database
{{- end -}}

{{- define "milvus.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "milvus.authSecretName" -}}
{{- default (printf "%s-auth" (include "milvus.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

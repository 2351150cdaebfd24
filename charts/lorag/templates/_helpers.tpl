{{/* Chart name, overridable. */}}
{{- define "lorag.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name prefix of every object (KubeRay limits RayService names to 47 characters). */}}
{{- define "lorag.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Kubernetes recommended labels. */}}
{{- define "lorag.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "lorag.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lorag
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "lorag.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lorag.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Image reference: digest wins over tag; tag defaults to appVersion. */}}
{{- define "lorag.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Secret of the bootstrap operator key. */}}
{{- define "lorag.bootstrapSecretName" -}}
{{- default (printf "%s-bootstrap" (include "lorag.fullname" .)) .Values.bootstrap.existingSecret -}}
{{- end -}}

{{/* Secret of the server secret API keys are hashed under. */}}
{{- define "lorag.authSecretName" -}}
{{- default (printf "%s-auth" (include "lorag.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Milvus: name of the subchart's objects (see charts/milvus/templates/_helpers.tpl). */}}
{{- define "lorag.milvusFullname" -}}
{{- printf "%s-milvus" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{/* Milvus URI the retrieval service connects to; fails on a contradictory choice. */}}
{{- define "lorag.milvusUri" -}}
{{- if and .Values.milvus.enabled .Values.externalMilvus.uri -}}
{{- fail "milvus.enabled and externalMilvus.uri are both set: choose the subchart or an external Milvus" -}}
{{- else if .Values.milvus.enabled -}}
{{- printf "http://%s.%s.svc:19530" (include "lorag.milvusFullname" .) .Release.Namespace -}}
{{- else if .Values.externalMilvus.uri -}}
{{- .Values.externalMilvus.uri -}}
{{- else -}}
{{- fail "no Milvus: set milvus.enabled=true (bundled standalone) or externalMilvus.uri" -}}
{{- end -}}
{{- end -}}

{{/* Environment of every lorag process (Ray head, workers, init containers, training job). */}}
{{- define "lorag.env" -}}
- name: LORAG_DATA_DIR
  value: /var/lib/lorag
- name: LORAG_MODELS_DIR
  value: {{ .Values.models.dir | quote }}
- name: LORAG_RERANKING_ARTIFACTS_DIR
  value: {{ .Values.models.dir | quote }}
- name: LORAG_DATASETS_DIR
  value: {{ printf "%s/datasets" .Values.models.dir | quote }}
- name: LORAG_GRPC_HOST
  value: 0.0.0.0
- name: LORAG_GRPC_PORT
  value: {{ .Values.serve.grpcPort | quote }}
- name: LORAG_MAX_MESSAGE_BYTES
  value: {{ .Values.serve.maxMessageBytes | int64 | quote }}
- name: RAY_SERVE_GRPC_MAX_MESSAGE_SIZE
  value: {{ .Values.serve.maxMessageBytes | int64 | quote }}
- name: LORAG_LOG_LEVEL
  value: {{ .Values.settings.logLevel | quote }}
- name: LORAG_AUTH_CACHE_TTL_S
  value: {{ .Values.settings.authCacheTtlS | quote }}
- name: LORAG_REQUEST_TIMEOUT_S
  value: {{ .Values.settings.requestTimeoutS | quote }}
- name: LORAG_AUTH_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "lorag.authSecretName" . }}
      key: {{ .Values.auth.secretKey }}
{{- with .Values.auth.previousSecretKey }}
- name: LORAG_AUTH_PREVIOUS_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "lorag.authSecretName" $ }}
      key: {{ . }}
{{- end }}
- name: LORAG_REGISTRY_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "registry.existingSecret: the Secret with the Postgres SQLAlchemy URL" .Values.registry.existingSecret }}
      key: {{ .Values.registry.urlKey }}
- name: LORAG_ADAPTERS_BLOB_URL
  value: {{ .Values.blobStore.url | quote }}
{{- with .Values.blobStore.endpointUrl }}
- name: LORAG_ADAPTERS_BLOB_OPTIONS
  value: {{ dict "endpoint_url" . | toJson | quote }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
{{- end }}
{{- with .Values.blobStore.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.blobStore.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.blobStore.secretAccessKeyKey }}
{{- end }}
- name: LORAG_RETRIEVAL_MILVUS_URI
  value: {{ include "lorag.milvusUri" . | quote }}
{{- if .Values.milvus.enabled }}
{{- if .Values.milvus.auth.enabled }}
- name: LORAG_RETRIEVAL_MILVUS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-auth" (include "lorag.milvusFullname" .) }}
      key: token
{{- end }}
{{- else }}
{{- with .Values.externalMilvus.existingSecret }}
- name: LORAG_RETRIEVAL_MILVUS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.externalMilvus.tokenKey }}
{{- end }}
{{- with .Values.externalMilvus.dbName }}
- name: LORAG_RETRIEVAL_MILVUS_DB_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
- name: RAY_USAGE_STATS_ENABLED
  value: "0"
- name: HF_HUB_OFFLINE
  value: "1"
- name: HF_HUB_DISABLE_TELEMETRY
  value: "1"
- name: TRANSFORMERS_OFFLINE
  value: "1"
- name: OMP_WAIT_POLICY
  value: PASSIVE
{{- with .Values.ray.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Writable directories of a read-only-root lorag container. */}}
{{- define "lorag.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/lorag
- name: data
  mountPath: /var/lib/lorag
{{- if or .Values.models.prepare .Values.models.persistence.enabled }}
- name: models
  mountPath: {{ .Values.models.dir }}
{{- end }}
{{- end -}}

{{/* Volumes behind lorag.volumeMounts; "shm" is the Ray object store (/dev/shm). */}}
{{- define "lorag.volumes" -}}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
- name: data
  emptyDir: {}
{{- if .Values.models.persistence.enabled }}
- name: models
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-models" (include "lorag.fullname" .)) .Values.models.persistence.existingClaim }}
{{- else if .Values.models.prepare }}
- name: models
  emptyDir: {}
{{- end }}
{{- end -}}

{{/* Init container that builds the default models into the models volume (idempotent).
Argument: dict "root" $ "resources" <container resources>. */}}
{{- define "lorag.modelsInit" -}}
{{- $ := .root -}}
- name: prepare-models
  image: {{ include "lorag.image" $ }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  command: ["lorag", "prepare-models"]
  env:
    {{- include "lorag.env" $ | nindent 4 }}
  volumeMounts:
    {{- include "lorag.volumeMounts" $ | nindent 4 }}
  securityContext:
    {{- toYaml $.Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml .resources | nindent 4 }}
{{- end -}}

{{/*
Probe command of a Ray container: every URL must answer HTTP 200 with "success" (the checks KubeRay
would inject, done with the image's Python instead of wget, which the image does not ship).
*/}}
{{- define "lorag.httpProbe" -}}
exec:
  command:
    - python
    - -c
    - "import sys, urllib.request as u; sys.exit(0 if all(b'success' in u.urlopen(x, timeout=2).read() for x in sys.argv[1:]) else 1)"
    {{- range . }}
    - {{ . }}
    {{- end }}
{{- end -}}

{{/*
serveConfigV2: files/serve.yaml (the copy of deploy/serve.yaml) with serve.applications overrides.
Unknown application names in the overrides are rejected by values.schema.json.
*/}}
{{- define "lorag.serveConfig" -}}
{{- $cfg := .Files.Get "files/serve.yaml" | fromYaml -}}
{{- if not $cfg.applications -}}
{{- fail "files/serve.yaml has no applications (run `make chart-sync`)" -}}
{{- end -}}
{{- $_ := set $cfg.grpc_options "port" (int .Values.serve.grpcPort) -}}
{{- $apps := list -}}
{{- range $app := $cfg.applications -}}
{{- $o := index $.Values.serve.applications $app.name | default dict -}}
{{- $d := first $app.deployments -}}
{{- with $o.autoscaling -}}
{{- $_ := set $d "autoscaling_config" (mergeOverwrite (default dict $d.autoscaling_config) .) -}}
{{- end -}}
{{- with $o.rayActorOptions -}}
{{- $_ := set $d "ray_actor_options" (mergeOverwrite (default dict $d.ray_actor_options) .) -}}
{{- end -}}
{{- with $o.maxOngoingRequests -}}
{{- $_ := set $d "max_ongoing_requests" . -}}
{{- end -}}
{{- with $o.env -}}
{{- $vars := dict -}}
{{- range $k, $v := . -}}
{{- $_ := set $vars $k (toString $v) -}}
{{- end -}}
{{- $_ := set $app "runtime_env" (dict "env_vars" $vars) -}}
{{- end -}}
{{- $a := $d.autoscaling_config -}}
{{- if and $a (gt (int $a.min_replicas) (int $a.max_replicas)) -}}
{{- fail (printf "serve.applications.%s.autoscaling: min_replicas %v > max_replicas %v" $app.name $a.min_replicas $a.max_replicas) -}}
{{- end -}}
{{- $apps = append $apps $app -}}
{{- end -}}
{{- $_ := set $cfg "applications" $apps -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* " 'a' 'b'" from a list of arguments (shell-quoted, for an entrypoint string). */}}
{{- define "lorag.quotedArgs" -}}
{{- range . }} {{ printf "'%s'" (replace "'" "'\\''" (toString .)) }}{{ end -}}
{{- end -}}

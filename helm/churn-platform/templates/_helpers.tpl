{{/* ---------------------------------------------------------------------------------
Names and labels
--------------------------------------------------------------------------------- */}}

{{- define "churn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name (at most 63 characters: a DNS label). */}}
{{- define "churn.fullname" -}}
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

{{/* Name of a component's objects. Call: include "churn.componentName" (list $ "serving") */}}
{{- define "churn.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "churn.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "churn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Call: include "churn.labels" (list $ "serving") ("" = none) */}}
{{- define "churn.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "churn.chart" $root }}
{{ include "churn.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: churn-platform
{{- with $root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels. Call: include "churn.selectorLabels" (list $ "serving") */}}
{{- define "churn.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "churn.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- with index . 1 }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "churn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "churn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "churn.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------
Addresses
--------------------------------------------------------------------------------- */}}

{{- define "churn.secretName" -}}
{{- default (include "churn.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "churn.configMapName" -}}
{{- include "churn.fullname" . }}
{{- end }}

{{- define "churn.stateClaimName" -}}
{{- default (include "churn.componentName" (list . "state")) .Values.state.persistence.existingClaim }}
{{- end }}

{{- define "churn.mlflowUrl" -}}
{{- printf "http://%s:%v" (include "churn.componentName" (list . "mlflow")) .Values.mlflow.service.port }}
{{- end }}

{{- define "churn.airflowApiUrl" -}}
{{- printf "http://%s:%v" (include "churn.componentName" (list . "airflow-api-server")) .Values.airflow.apiServer.service.port }}
{{- end }}

{{- define "churn.inChartRedisUrl" -}}
{{- printf "redis://%s:%v/0" (include "churn.componentName" (list . "redis")) .Values.redis.port }}
{{- end }}

{{/* The required secret values, each with the one message that names it. */}}
{{- define "churn.postgresUrl" -}}
{{- required "postgresql.url is required: the PostgreSQL server for MLflow and Airflow, postgresql://user:password@host:5432/postgres (or set existingSecret)" .Values.postgresql.url }}
{{- end }}

{{- define "churn.jwtSecret" -}}
{{- required "airflow.jwtSecret is required: a long random string shared by the Airflow components (or set existingSecret)" .Values.airflow.jwtSecret }}
{{- end }}

{{/*
A database URL on the PostgreSQL server of postgresql.url: the path replaced by the
database name and, for postgres* schemes, the scheme by the driver; mirrors
Settings.postgres_database_url in core/settings.py.
Call: include "churn.postgresDatabaseUrl" (list $ "churn_mlflow" "postgresql")
*/}}
{{- define "churn.postgresDatabaseUrl" -}}
{{- $root := index . 0 -}}
{{- $url := include "churn.postgresUrl" $root }}
{{- $parts := urlParse $url }}
{{- $scheme := $parts.scheme }}
{{- if hasPrefix "postgres" $scheme }}
{{- $scheme = index . 2 }}
{{- end }}
{{- urlJoin (dict "scheme" $scheme "userinfo" $parts.userinfo "host" $parts.host "path" (printf "/%s" (index . 1)) "query" $parts.query "opaque" "" "fragment" "") }}
{{- end }}

{{/* The secret project settings: each `secrets` value and its environment variable, as
JSON (secret.yaml writes them, churn.validate refuses them beside existingSecret). */}}
{{- define "churn.secretSettings" -}}
{{- toJson (dict
  "serveApiKey" "CHURN_SERVE_API_KEY"
  "alertWebhookUrl" "CHURN_MONITORING_ALERT_WEBHOOK_URL"
  "mlflowServerUri" "CHURN_MLFLOW_SERVER_URI"
  "mlflowTrackingUsername" "MLFLOW_TRACKING_USERNAME"
  "mlflowTrackingPassword" "MLFLOW_TRACKING_PASSWORD"
  "mlflowTrackingToken" "MLFLOW_TRACKING_TOKEN"
  "mlflowFlaskSecretKey" "MLFLOW_FLASK_SERVER_SECRET_KEY") }}
{{- end }}

{{/* "true" when the in-chart MLflow server runs MLflow's basic-auth app, "" otherwise. */}}
{{- define "churn.mlflowBasicAuth" -}}
{{- if and .Values.mlflow.enabled .Values.mlflow.basicAuth.enabled }}true{{ end }}
{{- end }}

{{/* The Secret's key holding MLflow's auth config file (mounted into the MLflow pod). */}}
{{- define "churn.mlflowAuthConfigKey" -}}
mlflow-basic-auth.ini
{{- end }}

{{/*
MLflow's auth config file (MLFLOW_AUTH_CONFIG_PATH, read by mlflow.server.auth.config): the
auth tables in the MLflow database itself (they keep their own version table,
alembic_version_auth). It holds the database password, so it is rendered into the Secret
only. MLflow reads it with configparser, whose interpolation takes `%` as a reference:
the URL's percent-encoding is written as `%%`. The admin's name and password come from
the environment (MLFLOW_AUTH_ADMIN_USERNAME / _PASSWORD), which wins over the file.
*/}}
{{- define "churn.mlflowAuthConfig" -}}
[mlflow]
default_permission = {{ .Values.mlflow.basicAuth.defaultPermission }}
database_uri = {{ include "churn.postgresDatabaseUrl" (list . .Values.postgresql.mlflowDatabase "postgresql") | replace "%" "%%" }}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
{{- end }}

{{/* The external MLflow server's URL (mlflow.enabled=false): from settings, or from
secrets when it carries credentials. */}}
{{- define "churn.externalMlflowUrl" -}}
{{- get .Values.settings "mlflow_server_uri" | default .Values.secrets.mlflowServerUri }}
{{- end }}

{{/* The chart-managed Airflow api-server session key: airflow.apiSecretKey or derived. */}}
{{- define "churn.airflowApiSecretKey" -}}
{{- if .Values.airflow.apiSecretKey }}
{{- .Values.airflow.apiSecretKey }}
{{- else }}
{{- printf "churn-platform/airflow-api-secret-key/%s" .Values.airflow.jwtSecret | sha256sum }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------
Checks run by every rendering (included from configmap.yaml)
--------------------------------------------------------------------------------- */}}
{{- define "churn.validate" -}}
{{- if not .Values.existingSecret }}
{{- $_ := include "churn.postgresUrl" . }}
{{- if not (or .Values.redis.enabled .Values.externalRedis.url) }}
{{- fail "externalRedis.url is required: Feast's online store, redis://[:password@]host:6379/0 (or set redis.enabled=true, or existingSecret)" }}
{{- end }}
{{- $_ := include "churn.jwtSecret" . }}
{{- if include "churn.mlflowBasicAuth" . }}
{{- $why := "with mlflow.basicAuth.enabled (MLflow's own login; or set existingSecret, or mlflow.basicAuth.enabled=false)" }}
{{- $_ := required (printf "secrets.mlflowTrackingUsername is required %s: the in-chart MLflow server's admin user, the platform's own login (MLFLOW_TRACKING_USERNAME)" $why) .Values.secrets.mlflowTrackingUsername }}
{{- $_ := required (printf "secrets.mlflowTrackingPassword is required %s: the admin's password (MLFLOW_TRACKING_PASSWORD), at least 12 characters" $why) .Values.secrets.mlflowTrackingPassword }}
{{- if and .Values.secrets.mlflowTrackingPassword (lt (len (toString .Values.secrets.mlflowTrackingPassword)) 12) }}
{{- fail "secrets.mlflowTrackingPassword must be at least 12 characters: it is the in-chart MLflow server's admin password, and MLflow refuses shorter ones" }}
{{- end }}
{{- $_ := required (printf "secrets.mlflowFlaskSecretKey is required %s: the server's session and CSRF key (MLFLOW_FLASK_SERVER_SECRET_KEY), a long random string" $why) .Values.secrets.mlflowFlaskSecretKey }}
{{- end }}
{{- end }}
{{- $reserved := dict
  "state_dir" "state.mountPath"
  "serve_host" "the chart (0.0.0.0)"
  "serve_port" "serving.port"
  "airflow_host" "the chart (0.0.0.0)"
  "airflow_port" "airflow.apiServer.port"
  "airflow_log_level" "airflow.logLevel"
  "mlflow_database" "postgresql.mlflowDatabase"
  "airflow_database" "postgresql.airflowDatabase"
  "prediction_log_store" "serving.predictionLog"
  "prediction_database" "postgresql.predictionDatabase"
  "deploy_namespace" "the release's namespace"
  "deploy_release" "the release's name"
  "deploy_deployment" "the chart (its serving Deployment)"
  "deploy_serving_url" "the chart (its serving Service)" }}
{{- /* values.schema.json refuses these first; the checks stay for --skip-schema-validation,
since whatever is in `settings` lands in the ConfigMap in plain text. */}}
{{- $secret := dict
  "postgres_url" "postgresql.url"
  "redis_url" "externalRedis.url"
  "serve_api_key" "secrets.serveApiKey"
  "monitoring_alert_webhook_url" "secrets.alertWebhookUrl" }}
{{- range $key, $value := .Values.settings }}
{{- if hasKey $reserved $key }}
{{- fail (printf "settings.%s is set by the chart: use %s" $key (get $reserved $key)) }}
{{- end }}
{{- if hasKey $secret $key }}
{{- fail (printf "settings.%s is secret and settings go to a ConfigMap: use %s (the Secret) or existingSecret" $key (get $secret $key)) }}
{{- end }}
{{- if regexMatch "://[^/?#@\\s\"']*@" (toJson $value) }}
{{- fail (printf "settings.%s holds a URL with credentials, a secret: use secrets (secrets.mlflowServerUri for mlflow_server_uri), extraSecretEnv or existingSecret" $key) }}
{{- end }}
{{- end }}
{{- $secretsSet := list }}
{{- range $key, $value := .Values.secrets }}
{{- if $value }}
{{- $secretsSet = append $secretsSet $key }}
{{- end }}
{{- end }}
{{- if and .Values.existingSecret $secretsSet }}
{{- $names := include "churn.secretSettings" . | fromJson }}
{{- $key := first (sortAlpha $secretsSet) }}
{{- fail (printf "secrets.%s cannot be used with existingSecret (the chart then writes no Secret): put %s in the Secret %s instead" $key (get $names $key) .Values.existingSecret) }}
{{- end }}
{{- if .Values.mlflow.enabled }}
{{- range list (ternary "settings.mlflow_server_uri" "" (hasKey .Values.settings "mlflow_server_uri")) (ternary "secrets.mlflowServerUri" "" (not (empty .Values.secrets.mlflowServerUri))) | compact }}
{{- fail (printf "%s is set by the chart while mlflow.enabled=true (the in-chart server); set mlflow.enabled=false to use another server" .) }}
{{- end }}
{{- end }}
{{- if and (get .Values.settings "mlflow_server_uri") .Values.secrets.mlflowServerUri }}
{{- fail "set one of settings.mlflow_server_uri and secrets.mlflowServerUri (the one whose URL carries credentials)" }}
{{- end }}
{{- if and (not .Values.mlflow.enabled) (not (include "churn.externalMlflowUrl" .)) }}
{{- fail "settings.mlflow_server_uri is required when mlflow.enabled=false: the MLflow tracking server to use (http://...; secrets.mlflowServerUri when its URL carries credentials)" }}
{{- end }}
{{- $airflowOwned := dict
  "AIRFLOW__CORE__EXECUTOR" "airflow.executor"
  "AIRFLOW__LOGGING__BASE_LOG_FOLDER" "state.mountPath (<mountPath>/airflow/logs, shared by every Airflow pod)"
  "AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE" "the release's namespace"
  "AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE" "airflow.worker (the chart's pod template)" }}
{{- range $key, $value := .Values.airflow.config }}
{{- if has $key (list "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" "AIRFLOW__API_AUTH__JWT_SECRET" "AIRFLOW__API__SECRET_KEY" "AIRFLOW__CORE__FERNET_KEY") }}
{{- fail (printf "airflow.config.%s is secret: it belongs in the Secret (airflow.* values or existingSecret), not in the ConfigMap" $key) }}
{{- end }}
{{- if regexMatch "://[^/?#@\\s\"']*@" (toString $value) }}
{{- fail (printf "airflow.config.%s holds a URL with credentials, a secret: put it in extraSecretEnv or existingSecret, not in the ConfigMap" $key) }}
{{- end }}
{{- if hasKey $airflowOwned $key }}
{{- fail (printf "airflow.config.%s is set by the chart: use %s" $key (get $airflowOwned $key)) }}
{{- end }}
{{- end }}
{{- if and .Values.serving.podDisruptionBudget.enabled (eq (kindIs "invalid" .Values.serving.podDisruptionBudget.minAvailable) (kindIs "invalid" .Values.serving.podDisruptionBudget.maxUnavailable)) }}
{{- fail "serving.podDisruptionBudget: set exactly one of minAvailable and maxUnavailable (the other null)" }}
{{- end }}
{{- if and (eq .Values.serving.predictionLog "sqlite") (or .Values.serving.autoscaling.enabled (gt (int .Values.serving.replicas) 1)) }}
{{- fail "serving.predictionLog=sqlite takes one serving replica only (SQLite's WAL needs every writer on one host): set serving.replicas=1 and serving.autoscaling.enabled=false, or use serving.predictionLog=postgresql" }}
{{- end }}
{{- if and (eq .Values.serving.predictionLog "sqlite") (include "churn.kubernetesExecutor" .) }}
{{- fail "serving.predictionLog=sqlite cannot be read by the KubernetesExecutor's task pods (SQLite's WAL needs its readers on the writer's host too): set airflow.executor=LocalExecutor, or use serving.predictionLog=postgresql" }}
{{- end }}
{{- if and .Values.ingress.enabled (not (or .Values.ingress.serving.host .Values.ingress.mlflow.host .Values.ingress.airflow.host)) }}
{{- fail "ingress.enabled=true needs at least one of ingress.serving.host, ingress.mlflow.host, ingress.airflow.host" }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------
Pieces of the project pods
--------------------------------------------------------------------------------- */}}

{{/* Container security context: the global one with a component's overrides merged in.
Call: include "churn.securityContext" (list $ .Values.serving.securityContext) */}}
{{- define "churn.securityContext" -}}
{{- $root := index . 0 -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.securityContext) (deepCopy (default dict (index . 1)))) }}
{{- end }}

{{/* Environment of every project container: the ConfigMap, the Secret, then overrides. */}}
{{- define "churn.envFrom" -}}
- configMapRef:
    name: {{ include "churn.configMapName" . }}
- secretRef:
    name: {{ include "churn.secretName" . }}
{{- end }}

{{/* Explicit env (wins over envFrom). Call: include "churn.env" (list $ .Values.serving.extraEnv) */}}
{{- define "churn.env" -}}
{{- $root := index . 0 -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if $root.Values.redis.enabled }}
- name: CHURN_REDIS_URL
  value: {{ include "churn.inChartRedisUrl" $root | quote }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with index . 1 }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "churn.volumeMounts" -}}
- name: state
  mountPath: {{ .Values.state.mountPath }}
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/churn
{{- end }}

{{- define "churn.volumes" -}}
- name: state
{{- if .Values.state.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "churn.stateClaimName" . }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}

{{/* Pod annotations that roll the pods when their configuration changes. */}}
{{- define "churn.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/*
A Deployment running the project image. Call with a dict:
  root       the top context ($)
  component  component name (serving, mlflow, airflow-scheduler, ...)
  cfg        the component's values (replicas, resources, probes, scheduling, ...)
  command    the container command (list)
  ports      list of (dict "name" .. "containerPort" ..)
optional:
  serviceAccountName  another service account than churn.serviceAccountName
  automountToken      mount its API token (default serviceAccount.automountServiceAccountToken)
  extraVolumes, extraVolumeMounts  lists added to the state, tmp and home volumes
  extraChecksums      a dict of more pod annotations that roll the pods (checksum/...)
*/}}
{{- define "churn.deployment" -}}
{{- $root := .root }}
{{- $cfg := .cfg }}
{{- $component := .component }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "churn.componentName" (list $root $component) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "churn.labels" (list $root $component) | nindent 4 }}
spec:
  {{- if not (and $cfg.autoscaling $cfg.autoscaling.enabled) }}
  replicas: {{ $cfg.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "churn.selectorLabels" (list $root $component) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "churn.labels" (list $root $component) | nindent 8 }}
        {{- with $cfg.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "churn.configChecksums" $root | nindent 8 }}
        {{- with .extraChecksums }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $cfg.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- /* The deploy DAG sets serving.deployedModels.<model>: a new version rolls the pods. */}}
        {{- range $model, $version := ($cfg.deployedModels | default dict) }}
        churn-platform.io/model-{{ $model }}: {{ $version | toString | quote }}
        {{- end }}
    spec:
      serviceAccountName: {{ .serviceAccountName | default (include "churn.serviceAccountName" $root) }}
      automountServiceAccountToken: {{ ternary .automountToken $root.Values.serviceAccount.automountServiceAccountToken (hasKey . "automountToken") }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $cfg.terminationGracePeriodSeconds | default 30 }}
      containers:
        - name: {{ $component }}
          image: {{ include "churn.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          {{- with .ports }}
          ports:
            {{- range . }}
            - name: {{ .name }}
              containerPort: {{ .containerPort }}
              protocol: TCP
            {{- end }}
          {{- end }}
          envFrom:
            {{- include "churn.envFrom" $root | nindent 12 }}
          env:
            {{- include "churn.env" (list $root $cfg.extraEnv) | nindent 12 }}
          {{- with $cfg.startupProbe }}
          startupProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          livenessProbe:
            {{- toYaml (required (printf "%s: livenessProbe is required" $component) $cfg.livenessProbe) | nindent 12 }}
          readinessProbe:
            {{- toYaml (required (printf "%s: readinessProbe is required" $component) $cfg.readinessProbe) | nindent 12 }}
          resources:
            {{- toYaml $cfg.resources | nindent 12 }}
          securityContext:
            {{- include "churn.securityContext" (list $root $cfg.securityContext) | nindent 12 }}
          volumeMounts:
            {{- include "churn.volumeMounts" $root | nindent 12 }}
            {{- with .extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        {{- include "churn.volumes" $root | nindent 8 }}
        {{- with .extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with (default $root.Values.nodeSelector $cfg.nodeSelector) }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $root.Values.tolerations $cfg.tolerations) }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with (default $root.Values.affinity $cfg.affinity) }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------
Airflow's executor
--------------------------------------------------------------------------------- */}}

{{/* "true" when tasks run in pods of their own (KubernetesExecutor), "" otherwise. */}}
{{- define "churn.kubernetesExecutor" -}}
{{- if eq .Values.airflow.executor "KubernetesExecutor" }}true{{ end }}
{{- end }}

{{/* The components whose pods run the DAGs' tasks (project code: Feast, MLflow, ...). */}}
{{- define "churn.taskComponent" -}}
{{- if include "churn.kubernetesExecutor" . }}airflow-worker{{ else }}airflow-scheduler{{ end }}
{{- end }}

{{/* The scheduler's service account: with the KubernetesExecutor one of its own (it alone
gets the API token and the Role that creates the task pods), else the shared one. */}}
{{- define "churn.schedulerServiceAccountName" -}}
{{- if not (include "churn.kubernetesExecutor" .) }}
{{- include "churn.serviceAccountName" . }}
{{- else if .Values.serviceAccount.create }}
{{- default (include "churn.componentName" (list . "airflow-scheduler")) .Values.airflow.scheduler.serviceAccountName }}
{{- else }}
{{- default (include "churn.serviceAccountName" .) .Values.airflow.scheduler.serviceAccountName }}
{{- end }}
{{- end }}

{{- define "churn.podTemplateName" -}}
{{- include "churn.componentName" (list . "airflow-pod-template") }}
{{- end }}

{{/* Where the scheduler reads the worker pod template (AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE). */}}
{{- define "churn.podTemplateDir" -}}
/etc/churn/airflow-pod-template
{{- end }}

{{/* The deploy task's pod template, beside it (the <model>_deploy DAG names this file in
its executor_config: dags/deploy_dag.py DEPLOYER_POD_TEMPLATE). */}}
{{- define "churn.deployerPodTemplateFile" -}}
{{- printf "%s/deployer_pod_template.yaml" (include "churn.podTemplateDir" .) }}
{{- end }}

{{/* The deploy task's service account: the only task pod with an API token. */}}
{{- define "churn.deployerServiceAccountName" -}}
{{- default (include "churn.componentName" (list . "airflow-deployer")) .Values.deploy.serviceAccountName }}
{{- end }}

{{/*
The deploy task's pod: a task pod (churn.workerPod) with its own component label (its
NetworkPolicy lets it reach the Kubernetes API and serving) and the deployer's service
account and token (its Role may upgrade and roll back this release, nothing else).
*/}}
{{- define "churn.deployerPod" -}}
{{- $pod := include "churn.workerPod" . | fromYaml }}
{{- $_ := set $pod.metadata "name" "churn-airflow-deployer" }}
{{- $_ := set $pod.metadata.labels "app.kubernetes.io/component" "airflow-deployer" }}
{{- $_ := set $pod.spec "serviceAccountName" (include "churn.deployerServiceAccountName" .) }}
{{- $_ := set $pod.spec "automountServiceAccountToken" true }}
{{- toYaml $pod }}
{{- end }}

{{- define "churn.podTemplateFile" -}}
{{- printf "%s/pod_template.yaml" (include "churn.podTemplateDir" .) }}
{{- end }}

{{/* Airflow's logs folder, on the state volume every Airflow pod and task pod mounts. */}}
{{- define "churn.airflowLogFolder" -}}
{{- printf "%s/airflow/logs" .Values.state.mountPath }}
{{- end }}

{{/*
The KubernetesExecutor's pod template: the base of every task pod. The executor adds the
task's command as the `base` container's args, its own labels and annotations, and the
name; everything else is the scheduler's: image, environment (ConfigMap + Secret), the
state volume (DAG outputs and task logs), security contexts, scheduling.
*/}}
{{- define "churn.workerPod" -}}
{{- $cfg := .Values.airflow.worker -}}
apiVersion: v1
kind: Pod
metadata:
  name: churn-airflow-worker
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "churn.labels" (list . "airflow-worker") | nindent 4 }}
    {{- with $cfg.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $cfg.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "churn.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $cfg.terminationGracePeriodSeconds | default 30 }}
  containers:
    - name: base
      image: {{ include "churn.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      envFrom:
        {{- include "churn.envFrom" . | nindent 8 }}
      env:
        {{- include "churn.env" (list . $cfg.extraEnv) | nindent 8 }}
      resources:
        {{- toYaml $cfg.resources | nindent 8 }}
      securityContext:
        {{- include "churn.securityContext" (list . $cfg.securityContext) | nindent 8 }}
      volumeMounts:
        {{- include "churn.volumeMounts" . | nindent 8 }}
  volumes:
    {{- include "churn.volumes" . | nindent 4 }}
  {{- with (default .Values.nodeSelector $cfg.nodeSelector) }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (default .Values.tolerations $cfg.tolerations) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (default .Values.affinity $cfg.affinity) }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* ---------------------------------------------------------------------------------
NetworkPolicy pieces (networkpolicy.yaml)
--------------------------------------------------------------------------------- */}}

{{/* A peer selecting one component's pods of this release, as YAML.
Call: include "churn.npPods" (list $ "serving") | fromYaml */}}
{{- define "churn.npPods" -}}
podSelector:
  matchLabels:
    {{- include "churn.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* An egress rule to `cidrs` (any address when empty) on TCP `ports`, as JSON.
Call: include "churn.npCidrRule" (dict "ports" .ports "cidrs" .cidrs "udp" false) | fromJson */}}
{{- define "churn.npCidrRule" -}}
{{- $ports := list }}
{{- range .ports }}
{{- if $.udp }}
{{- $ports = append $ports (dict "port" (int .) "protocol" "UDP") }}
{{- end }}
{{- $ports = append $ports (dict "port" (int .) "protocol" "TCP") }}
{{- end }}
{{- $rule := dict "ports" $ports }}
{{- $to := list }}
{{- range .cidrs }}
{{- $to = append $to (dict "ipBlock" (dict "cidr" .)) }}
{{- end }}
{{- if $to }}
{{- $_ := set $rule "to" $to }}
{{- end }}
{{- toJson $rule }}
{{- end }}

{{/* The TCP port of a URL: its own, else the scheme's default (http 80, https 443,
redis 6379, postgres 5432). Call: include "churn.urlPort" "redis://h:6380/0" */}}
{{- define "churn.urlPort" -}}
{{- $parts := urlParse . }}
{{- $host := $parts.host }}
{{- if regexMatch ":[0-9]+$" $host }}
{{- regexFind "[0-9]+$" $host }}
{{- else }}
{{- get (dict "http" "80" "https" "443" "redis" "6379" "rediss" "6379" "postgresql" "5432" "postgres" "5432") $parts.scheme | default "443" }}
{{- end }}
{{- end }}


{{/* Ports as JSON integers, with the port of `url` added when it is set.
Call: include "churn.npPorts" (dict "ports" .Values.networkPolicy.postgresql.ports "url" $url) | fromJsonArray */}}
{{- define "churn.npPorts" -}}
{{- $out := list }}
{{- range .ports }}
{{- $out = append $out (int .) }}
{{- end }}
{{- if .url }}
{{- $out = append $out (include "churn.urlPort" .url | int) }}
{{- end }}
{{- toJson ($out | uniq) }}
{{- end }}

{{/*
Names, labels and the one shared template every service file includes ("v2v.service").
*/}}

{{- define "v2v.services" -}}
intake manufacturing logistics release infusion projection
{{- end }}

{{- define "v2v.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-v2v unless the release name already contains the chart name. */}}
{{- define "v2v.fullname" -}}
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

{{- define "v2v.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Deployment/Service name of a service: (dict "root" $ "name" "intake") */}}
{{- define "v2v.componentName" -}}
{{- printf "%s-%s" (include "v2v.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "v2v.selectorLabels" -}}
app.kubernetes.io/name: {{ include "v2v.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "v2v.labels" -}}
helm.sh/chart: {{ include "v2v.chart" .root }}
{{ include "v2v.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: v2v
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "v2v.commonLabels" -}}
helm.sh/chart: {{ include "v2v.chart" . }}
app.kubernetes.io/name: {{ include "v2v.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: v2v
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "v2v.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "v2v.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* <repository>/v2v-<service>:<tag> */}}
{{- define "v2v.image" -}}
{{- $image := .root.Values.image }}
{{- printf "%s/v2v-%s:%s" (trimSuffix "/" $image.repository) .name (default .root.Chart.AppVersion $image.tag) }}
{{- end }}

{{/*
The exec probe command: gRPC health over mTLS as the pod's own site. Readiness asks the server
as a whole (SERVING only while the relay and every consumer are alive and progressing);
(dict "port" ... "live" true) asks liveness (`--live`: SERVING unless a part died, which only a
restart mends; an outage waited out does not restart the pod).
*/}}
{{- define "v2v.healthcheck" -}}
exec:
  command:
    - python
    - -m
    - v2v_platform.healthcheck
    - 127.0.0.1:{{ .port }}
    {{- if .live }}
    - --live
    {{- end }}
    - --timeout
    - "3"
{{- end }}

{{/*
Kafka security (kafka.security): whether the protocol uses TLS / SASL ("true" or "").
*/}}
{{- define "v2v.kafkaTls" -}}
{{- if has .Values.kafka.security.protocol (list "SSL" "SASL_SSL") }}true{{ end }}
{{- end }}

{{- define "v2v.kafkaSasl" -}}
{{- if has .Values.kafka.security.protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}true{{ end }}
{{- end }}

{{/* Where the CA of the brokers' certificates is mounted (kafka.security.caSecretName). */}}
{{- define "v2v.kafkaCaDir" -}}
/var/lib/v2v/kafka-ca
{{- end }}

{{/*
The client side of Kafka security every pod shares, as a dict: V2V_KAFKA_SECURITY_PROTOCOL and,
with TLS, the CA file (the consortium CA of the PKI Secret unless kafka.security.caSecretName),
with SASL the mechanism. The user name and password are each pod's own.
*/}}
{{- define "v2v.kafkaSecurityEnv" -}}
{{- $security := .Values.kafka.security }}
{{- $env := dict "V2V_KAFKA_SECURITY_PROTOCOL" $security.protocol }}
{{- if include "v2v.kafkaTls" . }}
{{- $ca := printf "%s/ca.crt" .Values.pki.mountPath }}
{{- if $security.caSecretName }}
{{- $ca = printf "%s/ca.crt" (include "v2v.kafkaCaDir" .) }}
{{- end }}
{{- $_ := set $env "V2V_KAFKA_SSL_CAFILE" $ca }}
{{- $_ := set $env "V2V_KAFKA_SSL_CHECK_HOSTNAME" (toString $security.checkHostname) }}
{{- end }}
{{- if include "v2v.kafkaSasl" . }}
{{- $_ := set $env "V2V_KAFKA_SASL_MECHANISM" (required "kafka.security.saslMechanism is required with a SASL protocol" $security.saslMechanism) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The volume holding the CA of the brokers' certificates, when it is not the consortium CA.
*/}}
{{- define "v2v.kafkaCaVolume" -}}
{{- $security := .Values.kafka.security }}
{{- if and (include "v2v.kafkaTls" .) $security.caSecretName }}
- name: kafka-ca
  secret:
    secretName: {{ $security.caSecretName }}
    defaultMode: 292  # 0444: a CA certificate is public
    items:
      - key: {{ $security.caSecretKey | default "ca.crt" }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "v2v.kafkaCaMount" -}}
{{- if and (include "v2v.kafkaTls" .) .Values.kafka.security.caSecretName }}
- name: kafka-ca
  mountPath: {{ include "v2v.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The projection's store (projection.store): postgres (default) or sqlite; where a replica's
volume (sqlite) is mounted.
*/}}
{{- define "v2v.projectionStore" -}}
{{- default "postgres" .Values.projection.store }}
{{- end }}

{{/* projection.catchUpMaxLag (0 allowed), 100 when absent. */}}
{{- define "v2v.catchUpMaxLag" -}}
{{- if hasKey .Values.projection "catchUpMaxLag" }}{{ int .Values.projection.catchUpMaxLag }}{{ else }}100{{ end }}
{{- end }}

{{- define "v2v.dataDir" -}}
/var/lib/v2v/data
{{- end }}

{{/*
The environment of a service, as a dict (names sorted when rendered): computed V2V_* settings,
then the service's own `env` on top. V2V_POSTGRES_DSN always comes from the Secret, and so does
V2V_KAFKA_SASL_PASSWORD (its Kafka user is named after the service).
*/}}
{{- define "v2v.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := index $root.Values $name }}
{{- $values := $root.Values }}
{{- $env := dict
  "V2V_SITE_ID" $svc.siteId
  "V2V_PKI_DIR" $values.pki.mountPath
  "V2V_KAFKA_BOOTSTRAP" (required "kafka.bootstrap is required" $values.kafka.bootstrap)
  "V2V_GRPC_ADDRESS" (printf "0.0.0.0:%d" (int $svc.grpcPort))
  "V2V_HTTP_HOST" "0.0.0.0"
  "V2V_HTTP_PORT" (int $svc.httpPort | toString)
  "V2V_TOPIC_PARTITIONS" (int $values.kafka.topicPartitions | toString)
  "V2V_TOPIC_REPLICATION_FACTOR" (int $values.kafka.topicReplicationFactor | toString)
  "V2V_SPAN_EXPORTER" $values.telemetry.spanExporter
}}
{{- $env = merge $env (include "v2v.kafkaSecurityEnv" $root | fromYaml) }}
{{- if include "v2v.kafkaSasl" $root }}
{{- $_ := set $env "V2V_KAFKA_SASL_USERNAME" $name }}
{{- end }}
{{- if $svc.fin }}
{{- $_ := set $env "V2V_FIN" $svc.fin }}
{{- else if has $name (list "intake" "manufacturing") }}
{{- fail (printf "%s.fin (V2V_FIN, the facility identification number) is required" $name) }}
{{- end }}
{{- if eq $values.telemetry.spanExporter "otlp" }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" (required "telemetry.otlpEndpoint is required when telemetry.spanExporter is otlp" $values.telemetry.otlpEndpoint) }}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_PROTOCOL" $values.telemetry.otlpProtocol }}
{{- end }}
{{- if eq $name "intake" }}
{{- if $values.manufacturing.enabled }}
{{- $target := printf "%s:%d" (include "v2v.componentName" (dict "root" $root "name" "manufacturing")) (int $values.manufacturing.grpcPort) }}
{{- $_ := set $env "V2V_MANUFACTURING_TARGET" $target }}
{{- else if not (hasKey $svc.env "V2V_MANUFACTURING_TARGET") }}
{{- fail "intake needs manufacturing: enable manufacturing or set intake.env.V2V_MANUFACTURING_TARGET" }}
{{- end }}
{{- end }}
{{- if hasKey $svc.env "V2V_POSTGRES_DSN" }}
{{- fail (printf "%s.env.V2V_POSTGRES_DSN: the DSN comes from the Secret %s.postgres.secretName" $name $name) }}
{{- end }}
{{- if hasKey $svc.env "V2V_KAFKA_SASL_PASSWORD" }}
{{- fail (printf "%s.env.V2V_KAFKA_SASL_PASSWORD: the password comes from the Secret %s.kafka.secretName" $name $name) }}
{{- end }}
{{- if eq $name "projection" }}
{{- if hasKey $svc.env "V2V_PROJECTION_REPLICA" }}
{{- fail "projection.env.V2V_PROJECTION_REPLICA: each replica's identity is its pod name" }}
{{- end }}
{{- $_ := set $env "V2V_CATCH_UP_MAX_LAG" (include "v2v.catchUpMaxLag" $root) }}
{{- if eq (include "v2v.projectionStore" $root) "sqlite" }}
{{- $_ := set $env "V2V_SQLITE_PATH" (printf "%s/projection.sqlite" (include "v2v.dataDir" .)) }}
{{- end }}
{{- end }}
{{- range $key, $value := $svc.env }}
{{- $_ := set $env $key (toString $value) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
One service, rendered only when <name>.enabled. Called as (dict "root" $ "name" "<service>").
  - a Deployment + Service (+ PodDisruptionBudget when replicas > 1);
  - the projection: a StatefulSet of full read replicas (ADR 0011) + a headless Service (the
    StatefulSet's serviceName: a stable name per replica) + the ordinary Service for reads
    (+ PodDisruptionBudget when replicas > 1). Each replica's identity is its pod name
    (V2V_PROJECTION_REPLICA): its own consumer group (<group>-N, replica 0 the group itself)
    and its own store (projection.store: postgres = its own schema of the projection's
    database, sqlite = its own PersistentVolumeClaim from the volumeClaimTemplate). A replica is
    ready (gRPC health, the readiness probe) only once it caught up with every partition, so
    the read Service routes only to replicas that hold the whole history, and a rolling update
    replaces the next replica only once the previous one caught up.
*/}}
{{- define "v2v.service" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := index $root.Values $name }}
{{- if $svc.enabled }}
{{- if not (regexMatch "^[A-Z0-9][A-Z0-9-]{1,31}$" (toString $svc.siteId)) }}
{{- fail (printf "%s.siteId %q is not a v2v site id (2-32 of A-Z, 0-9, '-')" $name (toString $svc.siteId)) }}
{{- end }}
{{- $fullname := include "v2v.componentName" . }}
{{- $replicas := int $svc.replicas }}
{{- $stateful := eq $name "projection" }}
{{- $sqlite := and $stateful (eq (include "v2v.projectionStore" $root) "sqlite") }}
---
apiVersion: apps/v1
{{- if $stateful }}
kind: StatefulSet
{{- else }}
kind: Deployment
{{- end }}
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "v2v.labels" . | nindent 4 }}
spec:
  replicas: {{ $replicas }}
  revisionHistoryLimit: 5
  {{- if $stateful }}
  serviceName: {{ $fullname }}-headless
  # every replica catches up on its own: no reason to start them one by one; updates still
  # replace one replica at a time, the next once the previous is ready (caught up)
  podManagementPolicy: Parallel
  updateStrategy:
    type: RollingUpdate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  {{- end }}
  selector:
    matchLabels:
      {{- include "v2v.selectorLabels" . | nindent 6 }}
  template:
    {{- include "v2v.podTemplate" (dict "root" $root "name" $name "sqlite" $sqlite) | trim | nindent 4 }}
  {{- if $sqlite }}
  volumeClaimTemplates:
    - metadata:
        name: data
        labels:
          {{- include "v2v.selectorLabels" . | nindent 10 }}
      spec:
        accessModes: [ReadWriteOnce]
        {{- with $svc.persistence.storageClassName }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ $svc.persistence.size | default "10Gi" }}
  {{- end }}
{{- if $stateful }}
---
# The StatefulSet's governing Service: a stable DNS name per replica
# (<pod>.{{ $fullname }}-headless), e.g. to ask one replica for its health. Reads go to the
# ordinary Service below, which routes only to ready (caught-up) replicas.
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-headless
  labels:
    {{- include "v2v.labels" . | nindent 4 }}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "v2v.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $svc.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: http
      port: {{ $svc.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "v2v.labels" . | nindent 4 }}
spec:
  type: {{ $root.Values.service.type }}
  selector:
    {{- include "v2v.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $svc.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: http
      port: {{ $svc.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
{{- if gt $replicas 1 }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "v2v.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "v2v.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The pod template of a service's Deployment or StatefulSet:
(dict "root" $ "name" "<service>" "sqlite" <the projection's store is a file on its volume>).
*/}}
{{- define "v2v.podTemplate" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $ctx := dict "root" $root "name" $name }}
{{- $svc := index $root.Values $name }}
{{- $site := $svc.siteId }}
{{- $env := include "v2v.env" $ctx | fromYaml }}
{{- $replicas := int $svc.replicas }}
metadata:
  labels:
    {{- include "v2v.labels" $ctx | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $root.Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "v2v.serviceAccountName" $root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $root.Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $name }}
      image: {{ include "v2v.image" $ctx | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      ports:
        - name: grpc
          containerPort: {{ $svc.grpcPort }}
          protocol: TCP
        - name: http
          containerPort: {{ $svc.httpPort }}
          protocol: TCP
      env:
        {{- range $key, $value := $env }}
        - name: {{ $key }}
          value: {{ $value | quote }}
        {{- end }}
        {{- if eq $name "projection" }}
        # the replica's identity (its consumer group and store): the pod name, <name>-<ordinal>
        - name: V2V_PROJECTION_REPLICA
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- if not .sqlite }}
        - name: V2V_POSTGRES_DSN
          valueFrom:
            secretKeyRef:
              name: {{ required (printf "%s.postgres.secretName is required" $name) $svc.postgres.secretName }}
              key: {{ $svc.postgres.secretKey | default "dsn" }}
        {{- end }}
        {{- if include "v2v.kafkaSasl" $root }}
        - name: V2V_KAFKA_SASL_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ required (printf "%s.kafka.secretName is required with a SASL protocol" $name) $svc.kafka.secretName }}
              key: {{ $svc.kafka.secretKey | default "password" }}
        {{- end }}
      startupProbe:
        {{- include "v2v.healthcheck" (dict "port" $svc.grpcPort "live" true) | nindent 8 }}
        {{- toYaml $root.Values.probes.startup | nindent 8 }}
      {{- if eq $name "projection" }}
      # NOT_SERVING while the replica catches up with the topics (a "catch-up" problem: not
      # ready, still live), then as every service's: no part stopped or stalled
      {{- end }}
      readinessProbe:
        {{- include "v2v.healthcheck" (dict "port" $svc.grpcPort) | nindent 8 }}
        {{- toYaml $root.Values.probes.readiness | nindent 8 }}
      livenessProbe:
        {{- include "v2v.healthcheck" (dict "port" $svc.grpcPort "live" true) | nindent 8 }}
        {{- toYaml $root.Values.probes.liveness | nindent 8 }}
      {{- with $svc.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: pki
          mountPath: {{ $root.Values.pki.mountPath }}
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if .sqlite }}
        - name: data
          mountPath: {{ include "v2v.dataDir" $root }}
        {{- end }}
        {{- with include "v2v.kafkaCaMount" $root }}
        {{- . | trim | nindent 8 }}
        {{- end }}
  volumes:
    - name: pki
      projected:
        defaultMode: 288  # 0440: owner root, group fsGroup (10001)
        sources:
          - secret:
              name: {{ required (printf "%s.pki.secretName is required" $name) $svc.pki.secretName }}
              items:
                - key: ca.crt
                  path: ca.crt
                - key: signing-keys.json
                  path: signing-keys.json
                - key: tls.crt
                  path: sites/{{ $site }}/tls.crt
                - key: tls.key
                  path: sites/{{ $site }}/tls.key
                - key: signing.key
                  path: sites/{{ $site }}/signing.key
          # the consortium's revocation lists (v2v pki revoke / revoke-token, ADR 0008):
          # optional, absent = nothing revoked; the kubelet refreshes them in place
          - secret:
              name: {{ $root.Values.pki.revocationSecretName }}
              optional: true
              items:
                - key: ca.crl
                  path: ca.crl
                - key: revoked-tokens.jwt
                  path: revoked-tokens.jwt
          {{- if has $name (list "intake" "manufacturing") }}
          # the consortium's DIN blocks (din-allocations.json of the site's PKI Secret): the
          # service numbers DINs only from its own block under its fin, and without one (or
          # with one overlapping another's) it does not start, saying why
          - secret:
              name: {{ $svc.pki.secretName }}
              optional: true
              items:
                - key: din-allocations.json
                  path: din-allocations.json
          {{- end }}
    - name: tmp
      emptyDir:
        medium: Memory
        sizeLimit: 64Mi
    {{- with include "v2v.kafkaCaVolume" $root }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  {{- if gt $replicas 1 }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "v2v.selectorLabels" $ctx | nindent 10 }}
    - maxSkew: 1
      topologyKey: topology.kubernetes.io/zone
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "v2v.selectorLabels" $ctx | nindent 10 }}
  {{- end }}
  {{- with $svc.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $svc.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $svc.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

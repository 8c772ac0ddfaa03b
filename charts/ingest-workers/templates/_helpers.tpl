{{/*
Naming, labels, API versions, security contexts, environment and validation for the ingest-workers chart.
*/}}

{{- define "workers.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "workers.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "workers.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "workers.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "workers.selectorLabels" -}}
app.kubernetes.io/name: ingest-workers
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "workers.labels" -}}
{{ include "workers.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: security-data-platform
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
toolkit.io/component: workers
{{- end -}}

{{- define "workers.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}{{- with .Values.image.digest }}@{{ . }}{{- end -}}
{{- end -}}

{{/* policy/v1 when served; offline rendering knows no kinds, so KubeVersion >= 1.21 also selects it. */}}
{{- define "workers.pdb.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/*
autoscaling/v2 when served. Helm's offline default API set always contains the group "autoscaling/v2", so the
group alone is trusted only with a KubeVersion of 1.23 or later (when v2 became GA); before that v2beta2.
*/}}
{{- define "workers.hpa.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version)) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{- define "workers.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "workers.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The workers' settings, as `toolkit-worker` names them (TOOLKIT_WORKER_<SETTING>; the contract is the worker's own
configuration, checked by running `toolkit-worker ROLE --check-config` with exactly this env in the tests). Secrets
are files of mounted Secrets: /etc/toolkit/kafka (the workload's Kafka identity), /etc/toolkit/es-user,
/etc/toolkit/es-ca, /etc/toolkit/syslog-tls. Takes (dict "root" $ "identity" <kafka.receiver|kafka.indexer>).
*/}}
{{- define "workers.kafkaEnv" -}}
{{- $v := .root.Values -}}
- {name: TOOLKIT_WORKER_KAFKA_BOOTSTRAP, value: {{ $v.kafka.bootstrap | quote }}}
- {name: TOOLKIT_WORKER_KAFKA_CA_FILE, value: /etc/toolkit/kafka/ca.crt}
{{- if eq $v.kafka.authentication "scram-sha-512" }}
- {name: TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL, value: sasl_ssl}
- {name: TOOLKIT_WORKER_KAFKA_SASL_MECHANISM, value: SCRAM-SHA-512}
- {name: TOOLKIT_WORKER_KAFKA_USERNAME, value: {{ .identity.username | quote }}}
- {name: TOOLKIT_WORKER_KAFKA_PASSWORD_FILE, value: /etc/toolkit/kafka/password}
{{- else }}
- {name: TOOLKIT_WORKER_KAFKA_SECURITY_PROTOCOL, value: ssl}
- {name: TOOLKIT_WORKER_KAFKA_CERT_FILE, value: /etc/toolkit/kafka/tls.crt}
- {name: TOOLKIT_WORKER_KAFKA_KEY_FILE, value: /etc/toolkit/kafka/tls.key}
{{- end }}
- {name: TOOLKIT_WORKER_TOPIC, value: {{ $v.kafka.eventsTopic | quote }}}
- {name: TOOLKIT_WORKER_DEAD_LETTER_TOPIC, value: {{ $v.kafka.deadLetterTopic | quote }}}
- {name: TOOLKIT_WORKER_HTTP_PORT, value: {{ $v.httpPort | toString | quote }}}
{{- end -}}

{{/*
validateValues: collect every problem, then fail once with all of them.
*/}}
{{- define "workers.validateValues" -}}
{{- $errs := list -}}
{{- if not .Values.image.repository -}}
{{- $errs = append $errs "image.repository is empty: the toolkit injects it from its catalog (toolkit deploy); by hand pass --set image.repository=<catalog workers.image>" -}}
{{- end -}}
{{- if not .Values.image.tag -}}
{{- $errs = append $errs "image.tag is empty: it is the worker version from the toolkit catalog; pass --set image.tag=<version listed in toolkit/catalog/catalog.yaml>" -}}
{{- end -}}
{{- if not .Values.kafka.bootstrap -}}
{{- $errs = append $errs "kafka.bootstrap is empty: give the Kafka bootstrap servers (the kafka chart's NOTES print them)" -}}
{{- end -}}
{{- if not .Values.elasticsearch.url -}}
{{- $errs = append $errs "elasticsearch.url is empty: give the Elasticsearch URL (the elasticsearch chart's NOTES print it)" -}}
{{- end -}}
{{- if not .Values.elasticsearch.userSecret -}}
{{- $errs = append $errs "elasticsearch.userSecret is empty: name the Secret holding the indexer's Elasticsearch password (passwords never go in values)" -}}
{{- end -}}
{{- if and (hasPrefix "https://" .Values.elasticsearch.url) (not .Values.elasticsearch.caSecret) -}}
{{- $errs = append $errs "elasticsearch.url is https but elasticsearch.caSecret is empty: name the Secret with ca.crt that signs Elasticsearch's certificate" -}}
{{- end -}}
{{- range $role := list "receiver" "indexer" -}}
{{- $u := index $.Values.kafka $role -}}
{{- if not $u.secret -}}
{{- $errs = append $errs (printf "kafka.%s.secret is empty: name the Secret of its Kafka identity (ca.crt, and tls.crt + tls.key or password)" $role) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.kafka.eventsTopic .Values.kafka.deadLetterTopic -}}
{{- $errs = append $errs (printf "kafka.eventsTopic and kafka.deadLetterTopic are both %q: dead letters need their own topic" .Values.kafka.eventsTopic) -}}
{{- end -}}
{{- $sd := .Values.shutdown -}}
{{- $receiverStop := addf $sd.lingerSeconds $sd.readSeconds $sd.flushSeconds -}}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 $receiverStop) -}}
{{- $errs = append $errs (printf "terminationGracePeriodSeconds %d does not exceed the receiver's shutdown.lingerSeconds + readSeconds + flushSeconds = %v: it would be killed before Kafka acknowledged what it accepted; raise terminationGracePeriodSeconds" (int .Values.terminationGracePeriodSeconds) $receiverStop) -}}
{{- end -}}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (float64 $sd.drainSeconds) -}}
{{- $errs = append $errs (printf "terminationGracePeriodSeconds %d does not exceed shutdown.drainSeconds %v: an indexer stopped mid-batch would be killed before it commits; raise terminationGracePeriodSeconds" (int .Values.terminationGracePeriodSeconds) $sd.drainSeconds) -}}
{{- end -}}
{{- range $name := list "receiver" "indexer" -}}
{{- $hpa := index $.Values $name "hpa" -}}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- $errs = append $errs (printf "%s.hpa.minReplicas %d exceeds maxReplicas %d" $name (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.syslogSenders) -}}
{{- $errs = append $errs "networkPolicy.syslogSenders is empty: list the senders allowed to send syslog (e.g. - ipBlock: {cidr: 10.20.0.0/16}); no source is trusted by default" -}}
{{- end -}}
{{- $p := .Values.receiver.ports -}}
{{- $container := list (int $p.tls) (add 1000 (int $p.tcp)) (add 1000 (int $p.udp)) (int .Values.httpPort) -}}
{{- if ne (len ($container | uniq)) 4 -}}
{{- $errs = append $errs (printf "container ports collide: syslog TLS %d, TCP %d, UDP %d and HTTP %d must differ" (int $p.tls) (add 1000 (int $p.tcp)) (add 1000 (int $p.udp)) (int .Values.httpPort)) -}}
{{- end -}}
{{- if $errs -}}
{{- fail (printf "\n\nVALUES VALIDATION (ingest-workers chart), %d problem(s):\n  - %s\n" (len $errs) (join "\n  - " $errs)) -}}
{{- end -}}
{{- end -}}

{{/*
Checkov findings accepted on purpose, with the reason (Checkov reads these annotations on the resource).
*/}}
{{- define "workers.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_15=IfNotPresent on purpose: an image pinned by digest (catalog `digest`) cannot change under its reference, and Always would fail on nodes that cannot reach the registry (kind's loaded images, air-gapped regions)"
{{- end -}}

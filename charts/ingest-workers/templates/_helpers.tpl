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
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
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

{{/* Kafka connection env shared by both workers; takes (dict "root" $ "user" <receiverUser|indexerUser>). */}}
{{- define "workers.kafkaEnv" -}}
{{- $v := .root.Values -}}
{{- $n := $v.envNames -}}
- {name: {{ $n.kafkaBootstrap }}, value: {{ $v.kafka.bootstrap | quote }}}
- {name: {{ $n.kafkaSecurityProtocol }}, value: {{ $v.kafka.securityProtocol | quote }}}
{{- if ne $v.kafka.securityProtocol "PLAINTEXT" }}
- {name: {{ $n.kafkaCaFile }}, value: /etc/toolkit/kafka-tls/ca.crt}
- {name: {{ $n.kafkaCertFile }}, value: /etc/toolkit/kafka-tls/tls.crt}
- {name: {{ $n.kafkaKeyFile }}, value: /etc/toolkit/kafka-tls/tls.key}
{{- end }}
{{- if eq $v.kafka.securityProtocol "SASL_SSL" }}
- {name: {{ $n.kafkaSaslMechanism }}, value: {{ $v.kafka.saslMechanism | quote }}}
- {name: {{ $n.kafkaUsername }}, value: {{ .user.username | quote }}}
- name: {{ $n.kafkaPassword }}
  valueFrom:
    secretKeyRef:
      name: {{ .user.existingSecret }}
      key: {{ .user.passwordKey }}
{{- end }}
- {name: {{ $n.eventsTopic }}, value: {{ $v.kafka.eventsTopic | quote }}}
- {name: {{ $n.batchSize }}, value: {{ $v.batch.size | toString | quote }}}
- {name: {{ $n.batchTimeoutSeconds }}, value: {{ $v.batch.timeoutSeconds | toString | quote }}}
- {name: {{ $n.httpPort }}, value: {{ $v.httpPort | toString | quote }}}
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
{{- if not .Values.elasticsearch.existingSecret -}}
{{- $errs = append $errs "elasticsearch.existingSecret is empty: name the Secret holding the indexer's Elasticsearch password (passwords never go in values)" -}}
{{- end -}}
{{- if and (hasPrefix "https://" .Values.elasticsearch.url) (not .Values.elasticsearch.caSecret) -}}
{{- $errs = append $errs "elasticsearch.url is https but elasticsearch.caSecret is empty: name the Secret with ca.crt that signs Elasticsearch's certificate" -}}
{{- end -}}
{{- if and (ne .Values.kafka.securityProtocol "PLAINTEXT") (not .Values.kafka.tlsSecret) -}}
{{- $errs = append $errs (printf "kafka.securityProtocol is %s but kafka.tlsSecret is empty: name the Secret with ca.crt, tls.crt and tls.key" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if eq .Values.kafka.securityProtocol "SASL_SSL" -}}
{{- range $role := list "receiverUser" "indexerUser" -}}
{{- $u := index $.Values.kafka $role -}}
{{- if or (not $u.username) (not $u.existingSecret) -}}
{{- $errs = append $errs (printf "kafka.securityProtocol is SASL_SSL but kafka.%s needs username and existingSecret: the SCRAM password comes from that Secret" $role) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.kafka.eventsTopic .Values.kafka.deadLetterTopic -}}
{{- $errs = append $errs (printf "kafka.eventsTopic and kafka.deadLetterTopic are both %q: dead letters need their own topic" .Values.kafka.eventsTopic) -}}
{{- end -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.batch.timeoutSeconds) -}}
{{- $errs = append $errs (printf "terminationGracePeriodSeconds %d does not exceed batch.timeoutSeconds %d: a pod stopped mid-batch would be killed before the batch completes; raise terminationGracePeriodSeconds" (int .Values.terminationGracePeriodSeconds) (int .Values.batch.timeoutSeconds)) -}}
{{- end -}}
{{- range $name := list "receiver" "indexer" -}}
{{- $hpa := index $.Values $name "hpa" -}}
{{- if and $hpa.enabled (gt (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- $errs = append $errs (printf "%s.hpa.minReplicas %d exceeds maxReplicas %d" $name (int $hpa.minReplicas) (int $hpa.maxReplicas)) -}}
{{- end -}}
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

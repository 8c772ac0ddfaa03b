{{/*
Naming, labels, API versions, security contexts and validation for the Kafka chart.
*/}}

{{- define "kafka.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-chart prefix, at most 40 characters so pod names and revision labels stay under 63. */}}
{{- define "kafka.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "kafka.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kafka.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kafka.selectorLabels" -}}
app.kubernetes.io/name: kafka
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka.labels" -}}
{{ include "kafka.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: security-data-platform
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
toolkit.io/component: kafka
{{- end -}}

{{- define "kafka.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}{{- with .Values.image.digest }}@{{ . }}{{- end -}}
{{- end -}}

{{- define "kafka.toolkitImage" -}}
{{- printf "%s:%s" .Values.toolkitImage.repository .Values.toolkitImage.tag -}}{{- with .Values.toolkitImage.digest }}@{{ . }}{{- end -}}
{{- end -}}

{{/*
PodDisruptionBudget API: policy/v1 when the cluster serves it. Offline rendering (helm template) knows only
group/versions, not kinds, so a KubeVersion of 1.21 or later also selects policy/v1.
*/}}
{{- define "kafka.pdb.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "kafka.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kafka.containerSecurityContext" -}}
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

{{/* The node pools to render: one entry per StatefulSet. */}}
{{- define "kafka.pools" -}}
{{- $full := include "kafka.fullname" . -}}
{{- if eq .Values.mode "combined" -}}
- {component: combined, roles: "broker,controller", idBase: 0, replicas: {{ .Values.broker.replicas }}, sizing: broker, name: {{ printf "%s-combined" $full }}}
{{- else -}}
- {component: controller, roles: controller, idBase: 0, replicas: {{ .Values.controller.replicas }}, sizing: controller, name: {{ printf "%s-controller" $full }}}
- {component: broker, roles: broker, idBase: 100, replicas: {{ .Values.broker.replicas }}, sizing: broker, name: {{ printf "%s-broker" $full }}}
{{- end -}}
{{- end -}}

{{/* The StatefulSet that holds the quorum voters. */}}
{{- define "kafka.voterPool" -}}
{{- if eq .Values.mode "combined" -}}combined{{- else -}}controller{{- end -}}
{{- end -}}

{{/* The StatefulSet whose pods serve clients. */}}
{{- define "kafka.brokerPool" -}}
{{- if eq .Values.mode "combined" -}}combined{{- else -}}broker{{- end -}}
{{- end -}}

{{- define "kafka.brokerCount" -}}
{{- .Values.broker.replicas -}}
{{- end -}}

{{/* controller.quorum.voters: id@fqdn:port for every voter. */}}
{{- define "kafka.quorumVoters" -}}
{{- $full := include "kafka.fullname" . -}}
{{- $pool := include "kafka.voterPool" . -}}
{{- $count := ternary .Values.broker.replicas .Values.controller.replicas (eq .Values.mode "combined") | int -}}
{{- $voters := list -}}
{{- range $i := until $count -}}
{{- $voters = append $voters (printf "%d@%s-%s-%d.%s-%s-headless.%s.svc.%s:%d" $i $full $pool $i $full $pool $.Release.Namespace $.Values.clusterDomain (int $.Values.listeners.controllerPort)) -}}
{{- end -}}
{{- join "," $voters -}}
{{- end -}}

{{/* Security protocol of the CLIENT and EXTERNAL listeners: always TLS; SCRAM on top when chosen. */}}
{{- define "kafka.clientProtocol" -}}
{{- if eq .Values.clientAuthentication.type "scram-sha-512" -}}SASL_SSL{{- else -}}SSL{{- end -}}
{{- end -}}

{{- define "kafka.scram" -}}
{{- if eq .Values.clientAuthentication.type "scram-sha-512" -}}true{{- end -}}
{{- end -}}

{{- define "kafka.bootstrapServers" -}}
{{- $full := include "kafka.fullname" . -}}
{{- printf "%s-bootstrap.%s.svc.%s:%d" $full .Release.Namespace .Values.clusterDomain (int .Values.listeners.clientPort) -}}
{{- end -}}

{{/*
validateValues: collect every problem, then fail once with all of them (so a user fixes everything in one pass).
*/}}
{{- define "kafka.validateValues" -}}
{{- $errs := list -}}
{{- if not .Values.image.repository -}}
{{- $errs = append $errs "image.repository is empty: the toolkit injects it from its catalog (toolkit deploy); when running helm by hand pass --set image.repository=<catalog kafka.image>" -}}
{{- end -}}
{{- if not .Values.image.tag -}}
{{- $errs = append $errs "image.tag is empty: it is the Kafka version from the toolkit catalog; pass --set image.tag=<version listed in toolkit/catalog/catalog.yaml>" -}}
{{- end -}}
{{- if not .Values.metadataVersion -}}
{{- $errs = append $errs "metadataVersion is empty: the initial KRaft metadata.version comes from the catalog entry of image.tag (e.g. 4.1-IV1); pass --set metadataVersion=<catalog metadata_version>" -}}
{{- end -}}
{{- if and .Values.rack.enabled (or (not .Values.toolkitImage.repository) (not .Values.toolkitImage.tag)) -}}
{{- $errs = append $errs "toolkitImage.repository/tag are empty but rack.enabled is true: the zone-lookup init step runs the toolkit image; pass the catalog workers image or set rack.enabled=false" -}}
{{- end -}}
{{- $brokers := int .Values.broker.replicas -}}
{{- if lt $brokers 1 -}}
{{- $errs = append $errs (printf "broker.replicas is %d: at least 1 broker is needed" $brokers) -}}
{{- end -}}
{{- if and (eq .Values.mode "dedicated") (eq (mod (int .Values.controller.replicas) 2) 0) -}}
{{- $errs = append $errs (printf "controller.replicas is %d: a KRaft quorum needs an odd number of voters (1, 3 or 5)" (int .Values.controller.replicas)) -}}
{{- end -}}
{{- $rf := int .Values.config.defaultReplicationFactor -}}
{{- $isr := int .Values.config.minInsyncReplicas -}}
{{- if gt $rf $brokers -}}
{{- $errs = append $errs (printf "config.defaultReplicationFactor %d exceeds broker.replicas %d: topic creation would fail; add brokers or lower the replication factor" $rf $brokers) -}}
{{- end -}}
{{- if gt $isr $rf -}}
{{- $errs = append $errs (printf "config.minInsyncReplicas %d exceeds config.defaultReplicationFactor %d: no acks=all write could succeed; lower minInsyncReplicas" $isr $rf) -}}
{{- end -}}
{{- if not .Values.tls.existingSecret -}}
{{- $errs = append $errs "tls.existingSecret is empty: name a Secret with tls.crt, tls.key and ca.crt (toolkit deploy creates kafka-tls; or one issued by cert-manager)" -}}
{{- end -}}
{{- $agent := .Values.metrics.jmxExporter.agent -}}
{{- if .Values.metrics.jmxExporter.enabled -}}
{{- if and (not $agent.image.repository) (not $agent.volume) -}}
{{- $errs = append $errs "metrics.jmxExporter.enabled is true but neither metrics.jmxExporter.agent.image.repository nor metrics.jmxExporter.agent.volume is set: the chart does not ship the JMX exporter javaagent jar; give an image that holds it (and cp) or a volume that holds it" -}}
{{- end -}}
{{- if and $agent.image.repository $agent.volume -}}
{{- $errs = append $errs "metrics.jmxExporter.agent.image.repository and metrics.jmxExporter.agent.volume are both set: give the jar one way" -}}
{{- end -}}
{{- if and $agent.image.repository (not $agent.image.tag) -}}
{{- $errs = append $errs "metrics.jmxExporter.agent.image.tag is empty: pin the image that holds the agent jar" -}}
{{- end -}}
{{- end -}}
{{- $scram := include "kafka.scram" . -}}
{{- if and $scram (not .Values.admin.existingSecret) -}}
{{- $errs = append $errs "clientAuthentication.type is scram-sha-512 but admin.existingSecret is empty: name the Secret holding the admin SCRAM password (passwords never go in values)" -}}
{{- end -}}
{{- range $i, $u := .Values.users -}}
{{- if and $scram (not $u.existingSecret) -}}
{{- $errs = append $errs (printf "users[%d] (%s) has no existingSecret but clientAuthentication.type is scram-sha-512: name the Secret holding its SCRAM password" $i $u.name) -}}
{{- end -}}
{{- if and (eq $u.role "indexer") (not $u.consumerGroup) -}}
{{- $errs = append $errs (printf "users[%d] (%s) has role indexer but no consumerGroup: its ACLs need the group it reads with" $i $u.name) -}}
{{- end -}}
{{- if eq $u.name $.Values.admin.name -}}
{{- $errs = append $errs (printf "users[%d] is named %s like the admin: a workload never gets the super user's identity" $i $u.name) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.topics.events.name .Values.topics.deadLetters.name -}}
{{- $errs = append $errs (printf "topics.events.name and topics.deadLetters.name are both %q: dead letters need their own topic" .Values.topics.events.name) -}}
{{- end -}}
{{- if .Values.external.enabled -}}
{{- $last := add (int .Values.external.nodePortBase) (sub $brokers 1) -}}
{{- if or (lt (int .Values.external.nodePortBase) 30000) (gt (int $last) 32767) -}}
{{- $errs = append $errs (printf "external.nodePortBase %d with %d brokers uses NodePorts %d..%d: all must lie in 30000..32767" (int .Values.external.nodePortBase) $brokers (int .Values.external.nodePortBase) (int $last)) -}}
{{- end -}}
{{- if and .Values.external.hosts (ne (len .Values.external.hosts) $brokers) -}}
{{- $errs = append $errs (printf "external.hosts lists %d hosts for %d brokers: give one per broker or leave it empty to use external.host" (len .Values.external.hosts) $brokers) -}}
{{- end -}}
{{- end -}}
{{- range $key := list "controller" "broker" -}}
{{- $res := index $.Values $key "resources" -}}
{{- if or (not $res.limits) (not $res.limits.memory) -}}
{{- $errs = append $errs (printf "%s.resources.limits.memory is missing: the JVM heap is derived from it (MaxRAMPercentage)" $key) -}}
{{- end -}}
{{- end -}}
{{- if $errs -}}
{{- fail (printf "\n\nVALUES VALIDATION (kafka chart), %d problem(s):\n  - %s\n" (len $errs) (join "\n  - " $errs)) -}}
{{- end -}}
{{- end -}}

{{/*
Metrics: what renders. The exporter is opt-in (its jar is supplied by the user). PodMonitor and PrometheusRule are
`auto` by default: rendered when the exporter is on AND the cluster serves monitoring.coreos.com/v1 (Helm reads that
from the cluster's discovery on install/upgrade, so a cluster without the Prometheus Operator never gets an object
it cannot store); `true` renders them regardless (offline rendering does not see CRDs); `false` never.
*/}}
{{- define "kafka.metrics.exporter" -}}
{{- if .Values.metrics.jmxExporter.enabled -}}true{{- end -}}
{{- end -}}

{{- define "kafka.metrics.operatorObject" -}}
{{- $setting := toString (index . 0) -}}
{{- $root := index . 1 -}}
{{- if eq $setting "true" -}}true
{{- else if and (eq $setting "auto") (include "kafka.metrics.exporter" $root) ($root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true
{{- end -}}
{{- end -}}

{{- define "kafka.metrics.dashboard" -}}
{{- $setting := toString .Values.metrics.dashboard.enabled -}}
{{- if or (eq $setting "true") (and (eq $setting "auto") (include "kafka.metrics.exporter" .)) -}}true{{- end -}}
{{- end -}}

{{/* Label matchers selecting this release's Kafka pods (namespace and pod names, as a PodMonitor labels them). */}}
{{- define "kafka.metrics.podSelector" -}}
{{- printf "namespace=\"%s\", pod=~\"%s-(controller|broker|combined)-[0-9]+\"" .Release.Namespace (include "kafka.fullname" .) -}}
{{- end -}}

{{- define "kafka.metrics.voterSelector" -}}
{{- printf "namespace=\"%s\", pod=~\"%s-%s-[0-9]+\"" .Release.Namespace (include "kafka.fullname" .) (include "kafka.voterPool" .) -}}
{{- end -}}

{{/*
Checkov findings accepted on purpose, with the reason (Checkov reads these annotations on the resource).
*/}}
{{- define "kafka.checkovSkips" -}}
checkov.io/skip1: "CKV_K8S_15=IfNotPresent on purpose: an image pinned by digest (catalog `digest`) cannot change under its reference, and Always would fail on nodes that cannot reach the registry (kind's loaded images, air-gapped regions)"
checkov.io/skip2: 'CKV_K8S_40=The apache/kafka image runs as its own user (uid 1000), which owns /opt/kafka; another uid needs the root group to read them. The pod runs non-root with no privilege escalation, every capability dropped, a read-only root filesystem and RuntimeDefault seccomp'
{{- end -}}

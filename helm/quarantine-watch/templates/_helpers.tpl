{{/* Names and labels. */}}
{{- define "qwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* fullname-component, within the 63 character limit. Call with (dict "root" $ "name" "processor"). */}}
{{- define "qwatch.componentName" -}}
{{- printf "%s-%s" (include "qwatch.fullname" .root | trunc (int (sub 62 (len .name)))) .name | trimSuffix "-" -}}
{{- end -}}

{{- define "qwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "qwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quarantine-watch
{{- end -}}

{{- define "qwatch.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "qwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The QWATCH_* settings of one component as a dict (lower-case key -> value): config, overlaid by the component's
own config, plus the chart-derived defaults. Call with (dict "root" $ "name" $name "component" $component);
returns JSON (use fromJson).
*/}}
{{- define "qwatch.settings" -}}
{{- $root := .root -}}
{{- $settings := mustMergeOverwrite (deepCopy ($root.Values.config | default dict)) (deepCopy (.component.config | default dict)) -}}
{{- range $k, $v := (.component.config | default dict) -}}
{{- if kindIs "invalid" $v -}}{{- $_ := unset $settings $k -}}{{- end -}}
{{- end -}}
{{- if not (hasKey $settings "kafka_client_id") -}}
{{- $_ := set $settings "kafka_client_id" (include "qwatch.componentName" (dict "root" $root "name" .name)) -}}
{{- end -}}
{{- if and (eq .name "processor") (not (hasKey $settings "processor_authority")) -}}
{{- $journal := index $root.Values.components "ingest-pypi-journal" | default dict -}}
{{- $_ := set $settings "processor_authority" (ternary "journal" "pages" (ne (toString $journal.enabled) "false")) -}}
{{- end -}}
{{- if and $root.Values.kafka.tls.caSecret (not (hasKey $settings "kafka_ssl_cafile")) -}}
{{- $_ := set $settings "kafka_ssl_cafile" (printf "/etc/qwatch/kafka-ca/%s" $root.Values.kafka.tls.caKey) -}}
{{- end -}}
{{- toJson $settings -}}
{{- end -}}

{{/* One setting as the string the code parses: lists joined with commas, whole numbers without exponent. */}}
{{- define "qwatch.envValue" -}}
{{- $v := . -}}
{{- if kindIs "slice" $v -}}
{{- join "," $v -}}
{{- else if and (kindIs "float64" $v) (eq (floor $v) $v) -}}
{{- int64 $v -}}
{{- else -}}
{{- toString $v -}}
{{- end -}}
{{- end -}}

{{/* Fail early on settings KafkaConfig would reject at start-up. Call with the settings dict. */}}
{{- define "qwatch.validate" -}}
{{- $s := .settings -}}
{{- $root := .root -}}
{{- if not (get $s "kafka_bootstrap") -}}
{{- fail "config.kafka_bootstrap is required: the chart always talks to a real Kafka cluster (host:port,...)" -}}
{{- end -}}
{{- $protocol := get $s "kafka_security_protocol" | default "PLAINTEXT" -}}
{{- if hasPrefix "SASL" $protocol -}}
{{- if not (get $s "kafka_sasl_mechanism") -}}
{{- fail "config.kafka_sasl_mechanism is required with SASL (e.g. SCRAM-SHA-512)" -}}
{{- end -}}
{{- if not (get $s "kafka_sasl_username") -}}
{{- fail "config.kafka_sasl_username is required with SASL" -}}
{{- end -}}
{{- if not (hasKey ($root.Values.secretEnv | default dict) "kafka_sasl_password") -}}
{{- fail "secretEnv.kafka_sasl_password is required with SASL ({existingSecret, key} or {value})" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The env list of a component's container. Call with (dict "root" $ "name" $name "component" $component). */}}
{{- define "qwatch.env" -}}
{{- $root := .root -}}
{{- $settings := include "qwatch.settings" . | fromJson -}}
{{- include "qwatch.validate" (dict "settings" $settings "root" $root) -}}
{{- range $key := keys $settings | sortAlpha }}
{{- $value := get $settings $key }}
{{- if not (kindIs "invalid" $value) }}
- name: {{ printf "QWATCH_%s" $key | upper }}
  value: {{ include "qwatch.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- range $key := keys ($root.Values.secretEnv | default dict) | sortAlpha }}
{{- $ref := get $root.Values.secretEnv $key }}
- name: {{ printf "QWATCH_%s" $key | upper }}
  valueFrom:
    secretKeyRef:
      {{- if $ref.existingSecret }}
      name: {{ $ref.existingSecret }}
      key: {{ required (printf "secretEnv.%s.key is required with existingSecret" $key) $ref.key }}
      {{- else }}
      name: {{ include "qwatch.fullname" $root }}-env
      key: {{ printf "QWATCH_%s" $key | upper }}
      {{- end }}
{{- end }}
- name: QWATCH_CACHE_DIR
  value: /var/cache/qwatch
- name: HOME
  value: /tmp
{{- end -}}

{{/* Volumes shared by every pod. Call with (dict "root" $ "component" $component). */}}
{{- define "qwatch.volumes" -}}
{{- $v := .root.Values.volumes -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $v.tmpSizeLimit }}
- name: cache
  emptyDir:
    sizeLimit: {{ .component.cacheSizeLimit | default $v.cacheSizeLimit }}
- name: state
  emptyDir:
    sizeLimit: {{ $v.stateSizeLimit }}
{{- with dig "mirrorVolume" "claimName" "" (.component | default dict) }}
- name: mirror
  persistentVolumeClaim:
    claimName: {{ . }}
{{- end }}
{{- with .root.Values.kafka.tls }}
{{- if .caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .caSecret }}
    items:
      - key: {{ .caKey }}
        path: {{ .caKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Call with (dict "root" $ "settings" $settings "component" $component). A component with mirrorVolume.claimName
(mirror-bandersnatch) gets that claim read-write at /srv/mirror, the --root its args name.
*/}}
{{- define "qwatch.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: cache
  mountPath: /var/cache/qwatch
- name: state
  mountPath: {{ get .settings "state_dir" | default "/var/lib/qwatch" }}
{{- if dig "mirrorVolume" "claimName" "" (.component | default dict) }}
- name: mirror
  mountPath: /srv/mirror
{{- end }}
{{- if .root.Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/qwatch/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by Deployments and the topics Job. */}}
{{- define "qwatch.podCommon" -}}
serviceAccountName: {{ include "qwatch.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
Placement: a component's own nodeSelector, tolerations, affinity, topologySpreadConstraints and priorityClassName
replace the global ones (a key the component leaves unset inherits the global value). Call with
(dict "root" $ "component" $component); the topics Job passes an empty component.
*/}}
{{- define "qwatch.placement" -}}
{{- $root := .root -}}
{{- $c := .component | default dict -}}
{{- with (hasKey $c "priorityClassName" | ternary $c.priorityClassName $root.Values.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- with (hasKey $c "nodeSelector" | ternary $c.nodeSelector $root.Values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (hasKey $c "tolerations" | ternary $c.tolerations $root.Values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (hasKey $c "affinity" | ternary $c.affinity $root.Values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (hasKey $c "topologySpreadConstraints" | ternary $c.topologySpreadConstraints $root.Values.topologySpreadConstraints) }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

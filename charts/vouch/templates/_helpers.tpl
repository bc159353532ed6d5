{{/* Names, labels and the vouch serve command line. */}}

{{- define "vouch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vouch.fullname" -}}
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

{{- define "vouch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vouch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vouch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vouch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vouch
{{- end -}}

{{- define "vouch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vouch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is given (what runs is then fixed), else repository:tag. */}}
{{- define "vouch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "vouch.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "vouch.fullname" .)) .Values.certificates.existingSecret -}}
{{- end -}}

{{- define "vouch.serviceName" -}}
{{- include "vouch.fullname" . -}}
{{- end -}}

{{/* Whether a PodDisruptionBudget is rendered. */}}
{{- define "vouch.pdbEnabled" -}}
{{- $e := .Values.pdb.enabled -}}
{{- if or (eq (toString $e) "true") (and (eq (toString $e) "auto") (gt (int .Values.replicas) 1)) -}}
true
{{- end -}}
{{- end -}}

{{- define "vouch.extractionEnabled" -}}
{{- if or .Values.extraction.extractors .Values.extraction.fetchers .Values.extraction.downloaders .Values.extraction.presets -}}
true
{{- end -}}
{{- end -}}

{{/* The extraction configuration file: the presets' extractors (extractors/<name>.yaml), then the values'. */}}
{{- define "vouch.extractionConfig" -}}
{{- $extractors := list -}}
{{- range (.Values.extraction.presets | default list) -}}
{{- $preset := $.Files.Get (printf "extractors/%s.yaml" .) | fromYaml -}}
{{- $extractors = concat $extractors ($preset.extractors | default list) -}}
{{- end -}}
{{- $extractors = concat $extractors (.Values.extraction.extractors | default list) -}}
{{- toYaml (dict "extractors" $extractors "fetchers" (.Values.extraction.fetchers | default list) "downloaders" (.Values.extraction.downloaders | default list)) -}}
{{- end -}}

{{/* Webhook rules for the kinds of the extraction presets. */}}
{{- define "vouch.presetRules" -}}
{{- if has "kars" (.Values.extraction.presets | default list) }}
- apiGroups: ["kars.azure.com"]
  apiVersions: ["v1alpha1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["karssandboxes", "karsevals", "mcpservers", "inferencepolicies", "toolpolicies", "karsmemories"]
  scope: Namespaced
{{- end }}
{{- end -}}

{{- /* TUF refresh: on unless a trusted root file or a bundle is the trusted root. */ -}}
{{- define "vouch.tufEnabled" -}}
{{- if and .Values.tuf.enabled (not (or .Values.trustedRoot.json .Values.trustedRoot.existingSecret)) (not (include "vouch.bundleEnabled" .)) -}}
true
{{- end -}}
{{- end -}}

{{- define "vouch.bundleEnabled" -}}
{{- if or .Values.bundle.existingSecret .Values.bundle.existingConfigMap .Values.bundle.volume -}}
true
{{- end -}}
{{- end -}}

{{/* The arguments of `vouch serve`; paths match the volume mounts of the Deployment. */}}
{{- define "vouch.args" -}}
- serve
- --tls-cert=/etc/vouch/tls/tls.crt
- --tls-key=/etc/vouch/tls/tls.key
- --listen=0.0.0.0:8443
- --health-listen=0.0.0.0:8080
- --kube=true
- --no-match={{ .Values.noMatch }}
- --pin-scope={{ .Values.webhook.pinScope }}
{{- with .Values.events.sink }}
- --events-sink={{ . }}
- --events-timeout={{ $.Values.events.timeout }}
{{- end }}
{{- with .Values.tracing.otlpEndpoint }}
- --otlp-endpoint={{ . }}
{{- end }}
- --timeout-budget={{ .Values.server.timeoutBudgetSeconds }}s
- --shutdown-grace={{ .Values.server.shutdownGraceSeconds }}s
- --max-body-bytes={{ int64 .Values.server.maxBodyBytes }}
{{- if .Values.dryRun }}
- --dry-run
{{- end }}
{{- if or .Values.trustedRoot.json .Values.trustedRoot.existingSecret }}
- --trusted-root=/etc/vouch/trusted-root/{{ if .Values.trustedRoot.json }}trusted_root.json{{ else }}{{ .Values.trustedRoot.key }}{{ end }}
{{- end }}
{{- if include "vouch.tufEnabled" . }}
- --tuf-mirror={{ .Values.tuf.mirror }}
{{- if .Values.tuf.root }}
- --tuf-root=/etc/vouch/tuf-root/root.json
{{- end }}
- --tuf-cache=/var/cache/vouch/tuf
- --tuf-refresh={{ .Values.tuf.refresh }}
{{- end }}
{{- range .Values.server.insecureRegistries }}
- --insecure-registry={{ . }}
{{- end }}
{{- if .Values.server.insecureIgnoreTlog }}
- --insecure-ignore-tlog
{{- end }}
{{- if .Values.registryAuth.existingSecret }}
- --registry-auth-file=/etc/vouch/registry-auth/.dockerconfigjson
{{- end }}
{{- if .Values.webhook.clientCA.existingSecret }}
- --client-ca=/etc/vouch/client-ca/ca.crt
{{- end }}
{{- if include "vouch.bundleEnabled" . }}
- --bundle=/etc/vouch/bundle/{{ .Values.bundle.file }}
- --bundle-key=/etc/vouch/bundle-key/bundle-key.pub
{{- end }}
{{- if include "vouch.extractionEnabled" . }}
- --extraction-config=/etc/vouch/extraction/extraction.yaml
{{- end }}
{{- if .Values.sharedCache.url }}
- --shared-cache={{ .Values.sharedCache.url }}
{{- end }}
{{- if or .Values.sharedCache.url .Values.sharedCache.existingSecret }}
- --shared-cache-key-file=/etc/vouch/shared-cache/key
- --shared-cache-timeout={{ .Values.sharedCache.timeout }}
{{- if .Values.sharedCache.caSecret }}
- --shared-cache-ca-file=/etc/vouch/shared-cache-ca/ca.crt
{{- end }}
{{- end }}
{{- range .Values.statusTargets }}
- --status-target={{ .group }}/{{ .version }}/{{ .kind }}={{ .plural }}
{{- end }}
- --scan-interval={{ .Values.scanner.interval }}
- --scan-max-registry-rps={{ int .Values.scanner.maxRegistryRps }}
{{- range .Values.server.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
Admission rules shared by both webhooks. Call with (dict "root" $ "validating" true|false): NetworkPolicies
only reach the validating webhook (nothing in them is pinned).
*/}}
{{- define "vouch.rules" -}}
{{- $v := .root.Values.webhook -}}
{{- /* pinScope pods: the mutating webhook is sent Pods only, never controllers or custom kinds. */ -}}
{{- if and (not .validating) (eq $v.pinScope "pods") -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers"]
  scope: Namespaced
{{- else -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "replicasets", "statefulsets", "daemonsets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- if $v.kserve }}
- apiGroups: ["serving.kserve.io"]
  apiVersions: ["*"]
  operations: ["CREATE", "UPDATE"]
  resources: ["inferenceservices"]
  scope: Namespaced
{{- end }}
{{- if and .validating $v.networkPolicies }}
- apiGroups: ["networking.k8s.io"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["networkpolicies"]
  scope: Namespaced
{{- end }}
{{- include "vouch.presetRules" .root }}
{{- with $v.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Never kube-system, never vouch's own namespace (it could not start), never opted-out namespaces. */}}
{{- define "vouch.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml (uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces)) | nindent 6 }}
  - key: {{ .Values.webhook.optOutLabel }}
    operator: DoesNotExist
{{- end -}}

{{/* Whether the scanner runs (scanner.interval is not zero). */}}
{{- define "vouch.scannerEnabled" -}}
{{- if not (regexMatch "^0+(ms|s|m|h)?$" (toString .Values.scanner.interval)) }}true{{ end -}}
{{- end -}}

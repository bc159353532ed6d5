{{/*
Contradictory values fail the render with a message naming them (values.schema.json checks types and
enums; this checks combinations). Included once, from deployment.yaml.

Decided NOT contradictory: dryRun with mode Enforce. dryRun is the global switch over whatever modes the
policies have; installing with Enforce policies under dryRun, watching the reports, then turning dryRun off
is the intended roll-out.
*/}}
{{- define "vouch.validate" -}}
{{- $v := .Values -}}
{{- $cm := $v.certificates.certManager.enabled -}}
{{- if and $cm $v.certificates.caBundle -}}
{{- fail "certificates.caBundle is set but certificates.certManager.enabled is true: cert-manager's CA injector owns the caBundle; set one or the other" -}}
{{- end -}}
{{- if and $cm $v.certificates.existingSecret -}}
{{- fail "certificates.existingSecret is set but certificates.certManager.enabled is true: cert-manager writes the serving Secret; set one or the other" -}}
{{- end -}}
{{- if and $v.certificates.existingSecret (not $v.certificates.caBundle) -}}
{{- fail "certificates.existingSecret needs certificates.caBundle (base64 PEM of the CA that signed it): the API server must be able to verify vouch's certificate" -}}
{{- end -}}
{{- if and $v.certificates.caBundle (not $v.certificates.existingSecret) (not $cm) -}}
{{- fail "certificates.caBundle is set without certificates.existingSecret: the chart generates its own CA and would not use it" -}}
{{- end -}}
{{- if and (eq (toString $v.pdb.enabled) "true") (lt (int $v.replicas) 2) -}}
{{- fail (printf "pdb.enabled is true with replicas %d: a PodDisruptionBudget with maxUnavailable %d over a single replica protects nothing; use replicas >= 2 or pdb.enabled auto" (int $v.replicas) (int $v.pdb.maxUnavailable)) -}}
{{- end -}}
{{- if and (include "vouch.pdbEnabled" .) (ge (int $v.pdb.maxUnavailable) (int $v.replicas)) -}}
{{- fail (printf "pdb.maxUnavailable %d is not below replicas %d: every webhook replica could be evicted at once" (int $v.pdb.maxUnavailable) (int $v.replicas)) -}}
{{- end -}}
{{- if ge (int $v.server.timeoutBudgetSeconds) (int $v.webhook.timeoutSeconds) -}}
{{- fail (printf "server.timeoutBudgetSeconds %d must be below webhook.timeoutSeconds %d: vouch must answer before the API server gives up and applies failurePolicy" (int $v.server.timeoutBudgetSeconds) (int $v.webhook.timeoutSeconds)) -}}
{{- end -}}
{{- if ge (int $v.server.shutdownGraceSeconds) (int $v.terminationGracePeriodSeconds) -}}
{{- fail (printf "server.shutdownGraceSeconds %d must be below terminationGracePeriodSeconds %d: the kubelet would kill vouch mid-drain" (int $v.server.shutdownGraceSeconds) (int $v.terminationGracePeriodSeconds)) -}}
{{- end -}}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.webhookFrom) -}}
{{- fail "networkPolicy.enabled needs networkPolicy.webhookFrom (the API server's addresses): with no peer, nothing could reach the webhook port and every admission would fall to failurePolicy" -}}
{{- end -}}
{{- if and (include "vouch.tufEnabled" .) (ne $v.tuf.mirror "public-good") (not $v.tuf.root) -}}
{{- fail "tuf.mirror is a private mirror: set tuf.root to its TUF root.json" -}}
{{- end -}}
{{- $sc := $v.sharedCache -}}
{{- if and $sc.url $sc.existingSecret -}}
{{- fail "sharedCache.url and sharedCache.existingSecret are both set: give the Redis URL one way" -}}
{{- end -}}
{{- if and (or $sc.url $sc.existingSecret) (not $sc.keySecret) -}}
{{- fail "sharedCache is on but sharedCache.keySecret is empty: the replicas need a shared HMAC key (a Secret) so that a writable Redis cannot forge verdicts" -}}
{{- end -}}
{{- if and $sc.keySecret (not (or $sc.url $sc.existingSecret)) -}}
{{- fail "sharedCache.keySecret is set without sharedCache.url or sharedCache.existingSecret: nothing would use it" -}}
{{- end -}}
{{- if and $sc.caSecret (not (or $sc.url $sc.existingSecret)) -}}
{{- fail "sharedCache.caSecret is set without sharedCache.url or sharedCache.existingSecret: nothing would use it" -}}
{{- end -}}
{{- if and $sc.caSecret $sc.url (not (hasPrefix "rediss://" $sc.url)) -}}
{{- fail "sharedCache.caSecret needs a rediss:// (TLS) sharedCache.url" -}}
{{- end -}}
{{- if and (or $sc.url $sc.existingSecret) (include "vouch.bundleEnabled" .) -}}
{{- fail "sharedCache cannot be used with bundle: verdicts from an offline bundle are not shared" -}}
{{- end -}}
{{- if and $v.trustedRoot.json $v.trustedRoot.existingSecret -}}
{{- fail "trustedRoot.json and trustedRoot.existingSecret are both set: give the trusted root one way" -}}
{{- end -}}
{{- $sources := 0 -}}
{{- if $v.bundle.existingSecret }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $v.bundle.existingConfigMap }}{{ $sources = add1 $sources }}{{ end -}}
{{- if $v.bundle.volume }}{{ $sources = add1 $sources }}{{ end -}}
{{- if gt $sources 1 -}}
{{- fail "bundle: give exactly one of existingSecret, existingConfigMap or volume" -}}
{{- end -}}
{{- if and (eq $sources 1) (not $v.bundle.key) -}}
{{- fail "bundle.key (the PEM public key the offline bundle is signed with) is required: an unauthenticated bundle is never trusted" -}}
{{- end -}}
{{- if and $v.bundle.key (eq $sources 0) -}}
{{- fail "bundle.key is set but no bundle source (bundle.existingSecret, existingConfigMap or volume)" -}}
{{- end -}}
{{- if and (eq $sources 1) (or $v.policies $v.trustRoots) -}}
{{- fail "policies/trustRoots with an offline bundle: vouch then enforces the bundle's (signed) policies only and would ignore these cluster resources; put the policies into the bundle" -}}
{{- end -}}
{{- if and (eq $sources 1) $v.server.insecureRegistries -}}
{{- fail "server.insecureRegistries with an offline bundle: verification reads only from the bundle, no registry is contacted" -}}
{{- end -}}
{{- if and (not $v.serviceAccount.create) (not $v.serviceAccount.name) -}}
{{- fail "serviceAccount.create is false: serviceAccount.name must name an existing account with vouch's permissions" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $i, $p := $v.policies -}}
{{- $kind := default "ClusterSupplyChainPolicy" $p.kind -}}
{{- if and (eq $kind "SupplyChainPolicy") (not $p.namespace) -}}
{{- fail (printf "policies[%d] (%s): a SupplyChainPolicy needs a namespace" $i $p.name) -}}
{{- end -}}
{{- if and (eq $kind "ClusterSupplyChainPolicy") $p.namespace -}}
{{- fail (printf "policies[%d] (%s): a ClusterSupplyChainPolicy is cluster-scoped; drop namespace or use kind SupplyChainPolicy" $i $p.name) -}}
{{- end -}}
{{- $key := printf "%s/%s/%s" $kind (default "" $p.namespace) $p.name -}}
{{- if hasKey $seen $key -}}
{{- fail (printf "policies[%d]: %s %s is defined twice" $i $kind $p.name) -}}
{{- end -}}
{{- $_ := set $seen $key true -}}
{{- end -}}
{{- end -}}

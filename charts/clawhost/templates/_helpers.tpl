{{/* Chart name, overridable. */}}
{{- define "clawhost.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource name prefix: release name, plus the chart name unless already in it. */}}
{{- define "clawhost.fullname" -}}
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

{{- define "clawhost.operator.fullname" -}}
{{- printf "%s-operator" (include "clawhost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clawhost.console.fullname" -}}
{{- printf "%s-console" (include "clawhost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clawhost.metricsService.name" -}}
{{- printf "%s-operator-metrics" (include "clawhost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clawhost.config.name" -}}
{{- printf "%s-config" (include "clawhost.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clawhost.operator.serviceAccountName" -}}
{{- default (include "clawhost.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{- define "clawhost.console.serviceAccountName" -}}
{{- default (include "clawhost.console.fullname" .) .Values.console.serviceAccount.name }}
{{- end }}

{{/* The access-key Secret: accessKey.existingSecret, else "<fullname>-access-key". */}}
{{- define "clawhost.accessKey.name" -}}
{{- default (printf "%s-access-key" (include "clawhost.fullname" .) | trunc 63 | trimSuffix "-") .Values.accessKey.existingSecret }}
{{- end }}

{{- define "clawhost.leaseName" -}}
{{- default (include "clawhost.operator.fullname" .) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{/* Common labels; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "clawhost.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "clawhost.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: clawhost
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels; call with (dict "ctx" $ "component" "operator"). */}}
{{- define "clawhost.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clawhost.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* The clawhost image: repository:tag, or repository:tag@digest when a digest is set. */}}
{{- define "clawhost.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Volumes shared by the operator and console pods:
- config: /etc/clawhost/config.yaml from the ConfigMap, the access key at
  /etc/clawhost/access-key/key, plus (operator only, when configured) the
  Tailscale OAuth client as files under /etc/clawhost/tailscale-oauth/ and the
  invites token at /etc/clawhost/tailscale-invites/token. One projected volume,
  so nothing is mounted inside another read-only mount.
- kube-api-access: the pod's ServiceAccount token, mounted explicitly (the
  pod spec turns automount off so no other container or sidecar gets it).
- tmp: scratch space, the root filesystem is read-only.
Call with (dict "ctx" $ "oauth" true/false).
*/}}
{{- define "clawhost.volumes" -}}
- name: config
  projected:
    defaultMode: 0440
    sources:
      - configMap:
          name: {{ include "clawhost.config.name" .ctx }}
          items:
            - key: config.yaml
              path: config.yaml
      {{- if and .oauth .ctx.Values.tailscale.oauth.existingSecret }}
      - secret:
          name: {{ .ctx.Values.tailscale.oauth.existingSecret }}
          items:
            - key: {{ .ctx.Values.tailscale.oauth.clientIdKey }}
              path: tailscale-oauth/client_id
            - key: {{ .ctx.Values.tailscale.oauth.clientSecretKey }}
              path: tailscale-oauth/client_secret
      {{- end }}
      {{- if and .oauth .ctx.Values.tailscale.invites.tokenSecret.name }}
      - secret:
          name: {{ .ctx.Values.tailscale.invites.tokenSecret.name }}
          items:
            - key: {{ .ctx.Values.tailscale.invites.tokenSecret.key }}
              path: tailscale-invites/token
      {{- end }}
      - secret:
          name: {{ include "clawhost.accessKey.name" .ctx }}
          items:
            - key: {{ .ctx.Values.accessKey.key }}
              path: access-key/key
      {{- /* The console's Stripe webhook signing secret (the operator's pods have oauth). */}}
      {{- if and (not .oauth) .ctx.Values.console.billing.stripe.webhookSecret.name }}
      - secret:
          name: {{ .ctx.Values.console.billing.stripe.webhookSecret.name }}
          items:
            - key: {{ .ctx.Values.console.billing.stripe.webhookSecret.key }}
              path: stripe/webhook-secret
      {{- end }}
- name: kube-api-access
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "clawhost.volumeMounts" -}}
- name: config
  mountPath: /etc/clawhost
  readOnly: true
- name: kube-api-access
  mountPath: /var/run/secrets/kubernetes.io/serviceaccount
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* NetworkPolicy egress rules shared by the operator and console. */}}
{{- define "clawhost.np.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end }}
{{- define "clawhost.np.kubeApiEgress" -}}
- ports:
    {{- range .Values.networkPolicy.kubeApi.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with .Values.networkPolicy.kubeApi.cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  {{- end }}
{{- end }}

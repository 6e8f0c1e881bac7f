{{/* Names and labels shared by every object of the release. */}}
{{- define "studio.name" -}}
{{- printf "%s-studio" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "studio.labels" -}}
app.kubernetes.io/name: studio
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "studio.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-env" (include "studio.name" .)) -}}
{{- end -}}

{{/* The env every studio container gets: the ConfigMap, then the Secret. */}}
{{- define "studio.envFrom" -}}
- configMapRef: { name: {{ include "studio.name" . }}-env }
- secretRef: { name: {{ include "studio.secretName" . }} }
{{- end -}}

{{/* Not root, read-only root filesystem; the studio writes only STUDIO_VAR_DIR and /tmp. */}}
{{- define "studio.podSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: { type: RuntimeDefault }
{{- end -}}

{{- define "studio.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: { drop: [ALL] }
{{- end -}}

{{- define "studio.volumeMounts" -}}
volumeMounts:
  - { name: var, mountPath: /var/lib/studio }
  - { name: tmp, mountPath: /tmp }
{{- end -}}

{{- define "studio.volumes" -}}
volumes:
  - name: var
    emptyDir: { sizeLimit: {{ .Values.varSizeLimit }} }
  - name: tmp
    emptyDir: {}
{{- end -}}

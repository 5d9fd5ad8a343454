{{- with .Values.sharding.selector }}
- {{ printf "--selector=%s" . | quote }}
{{- end }}
{{- if .Values.leaderElection.id }}
- {{ printf "--leader-election-id=%s" .Values.leaderElection.id | quote }}
{{- else if .Values.sharding.selector }}
- {{ printf "--leader-election-id=%s.customer-operator.licensing.scriptlock.com" .Release.Name | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}

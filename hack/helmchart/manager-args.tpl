{{- with .Values.sharding.selector }}
- {{ printf "--selector=%s" . | quote }}
{{- end }}
{{- if .Values.leaderElection.id }}
- {{ printf "--leader-election-id=%s" .Values.leaderElection.id | quote }}
{{- else if .Values.sharding.selector }}
- {{ printf "--leader-election-id=%s.customer-operator.licensing.scriptlock.com" .Release.Name | quote }}
{{- end }}
{{- /* Given only when changed: the defaults are the manager's, so that the default render is config/default's. */}}
{{- if ne (int .Values.deletionBudget.limit) 20 }}
- {{ printf "--deletion-budget=%d" (int .Values.deletionBudget.limit) | quote }}
{{- end }}
{{- if ne .Values.deletionBudget.window "1h" }}
- {{ printf "--deletion-budget-window=%s" .Values.deletionBudget.window | quote }}
{{- end }}
{{- if .Values.changelog.values }}
- "--changelog-values"
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}

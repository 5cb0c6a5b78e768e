{{/*
The sidecar as named templates for your own pod specs. The contract is in README.md;
in short, each takes a dict:

  namespace           required. The app's service name (MICRO_NAMESPACE): what other
                      apps call it by, /v1/call/<namespace>/<url>.
  root                required. The top-level context, $.
  appPort             port the app listens on at 127.0.0.1 (default 8080), giving
                      MICRO_APP_URL http://127.0.0.1:<appPort>
  appUrl              full MICRO_APP_URL instead (wins over appPort)
  routes              list (or comma-separated string) of urls served from start-up
                      (MICRO_ROUTES); "*" forwards every url. Optional: the app can
                      POST /v1/routes itself.
  name                container name (default micro-sidecar)
  native              true/false, overrides sidecar.native for this pod
  appHealthPath       path on the app for health checks (MICRO_APP_HEALTH_URL =
                      <app url><path>); overrides sidecar.appHealth.path, "" = off
  appShutdownSeconds  overrides sidecar.appShutdownSeconds for this pod
  extraEnv, extraArgs added after sidecar.extraEnv / sidecar.extraArgs
  subchart            the dependency's name or alias in a parent chart (default
                      micro-sidecar)

  "micro-sidecar.sidecar"                       one container (a list item), always
  "micro-sidecar.sidecar.initContainers"        that item when native, else nothing
  "micro-sidecar.sidecar.containers"            that item when not native, else nothing
  "micro-sidecar.terminationGracePeriodSeconds" the pod's minimum grace period (number)
  "micro-sidecar.sidecar.podAnnotations"        prometheus.io/* for the mesh port
*/}}

{{/* The chart's own scope for a public template's dict: (dict "a" <the dict>). Internal. */}}
{{- define "micro-sidecar.sidecar.scopeCheck" -}}
{{- if not .root -}}
{{- fail "micro-sidecar sidecar templates: the dict needs \"root\" $ (the top-level context)" -}}
{{- end -}}
{{- end -}}

{{/*
Timing for one pod, as YAML: native, preStop, grace, app, tgps (all seconds).
Takes (dict "s" <scope> "a" <the caller's dict>).

  native sidecar: kubelet stops the app containers first (their preStop + SIGTERM, up
    to app seconds); only once they have exited does the sidecar get its preStop
    (preStop seconds) and SIGTERM, then drains for up to grace seconds:
        tgps = app + preStop + grace + 2
  regular container: app and sidecar are stopped at the same moment, in parallel; the
    sidecar's preStop keeps it fully up while the app stops, then it drains:
        tgps = max(app, preStop + grace) + 2
  The 2 s margin covers process exit and kubelet's own latency.
*/}}
{{- define "micro-sidecar.sidecar.timing" -}}
{{- $v := .s.Values.sidecar -}}
{{- $native := $v.native -}}
{{- if hasKey .a "native" }}{{ $native = .a.native }}{{ end -}}
{{- $app := int64 $v.appShutdownSeconds -}}
{{- if hasKey .a "appShutdownSeconds" }}{{ $app = int64 .a.appShutdownSeconds }}{{ end -}}
{{- $grace := div (add (int64 $v.shutdownGraceMs) 999) 1000 -}}
{{- $pre := 0 -}}
{{- if eq $v.preStop.mode "none" -}}
{{- $pre = 0 -}}
{{- else if kindIs "invalid" $v.preStop.seconds -}}
{{- if not $native }}{{ $pre = $app }}{{ end -}}
{{- else -}}
{{- $pre = int64 $v.preStop.seconds -}}
{{- end -}}
{{- $tgps := 0 -}}
{{- if $native -}}
{{- $tgps = add $app $pre $grace 2 -}}
{{- else -}}
{{- $tgps = add (max $app (add $pre $grace)) 2 -}}
{{- end -}}
native: {{ $native }}
preStop: {{ $pre }}
grace: {{ $grace }}
app: {{ $app }}
tgps: {{ $tgps }}
{{- end -}}

{{/* Resolves the chart scope from the dict and renders "micro-sidecar.sidecar.render". */}}
{{- define "micro-sidecar.sidecar" -}}
{{- include "micro-sidecar.sidecar.scopeCheck" . -}}
{{- $s := .root -}}
{{- if and (ne .root.Chart.Name "micro-sidecar") .root.Subcharts -}}
{{- with index .root.Subcharts (.subchart | default "micro-sidecar") }}{{ $s = . }}{{ end -}}
{{- end -}}
{{- if not (and $s.Values.sidecar $s.Values.image $s.Values.registry) -}}
{{- fail "micro-sidecar.sidecar: micro-sidecar's values not found; add the micro-sidecar chart as a dependency (or pass \"subchart\" with its alias)" -}}
{{- end -}}
{{- include "micro-sidecar.sidecar.render" (dict "s" $s "a" .) -}}
{{- end -}}

{{- define "micro-sidecar.sidecar.initContainers" -}}
{{- include "micro-sidecar.sidecar.scopeCheck" . -}}
{{- $s := .root -}}
{{- if and (ne .root.Chart.Name "micro-sidecar") .root.Subcharts -}}
{{- with index .root.Subcharts (.subchart | default "micro-sidecar") }}{{ $s = . }}{{ end -}}
{{- end -}}
{{- $t := include "micro-sidecar.sidecar.timing" (dict "s" $s "a" .) | fromYaml -}}
{{- if $t.native }}{{ include "micro-sidecar.sidecar" . }}{{ end -}}
{{- end -}}

{{- define "micro-sidecar.sidecar.containers" -}}
{{- include "micro-sidecar.sidecar.scopeCheck" . -}}
{{- $s := .root -}}
{{- if and (ne .root.Chart.Name "micro-sidecar") .root.Subcharts -}}
{{- with index .root.Subcharts (.subchart | default "micro-sidecar") }}{{ $s = . }}{{ end -}}
{{- end -}}
{{- $t := include "micro-sidecar.sidecar.timing" (dict "s" $s "a" .) | fromYaml -}}
{{- if not $t.native }}{{ include "micro-sidecar.sidecar" . }}{{ end -}}
{{- end -}}

{{- define "micro-sidecar.terminationGracePeriodSeconds" -}}
{{- include "micro-sidecar.sidecar.scopeCheck" . -}}
{{- $s := .root -}}
{{- if and (ne .root.Chart.Name "micro-sidecar") .root.Subcharts -}}
{{- with index .root.Subcharts (.subchart | default "micro-sidecar") }}{{ $s = . }}{{ end -}}
{{- end -}}
{{- $t := include "micro-sidecar.sidecar.timing" (dict "s" $s "a" .) | fromYaml -}}
{{- $t.tgps -}}
{{- end -}}

{{- define "micro-sidecar.sidecar.podAnnotations" -}}
{{- include "micro-sidecar.sidecar.scopeCheck" . -}}
{{- $s := .root -}}
{{- if and (ne .root.Chart.Name "micro-sidecar") .root.Subcharts -}}
{{- with index .root.Subcharts (.subchart | default "micro-sidecar") }}{{ $s = . }}{{ end -}}
{{- end -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ int64 $s.Values.sidecar.meshPort | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* The container itself. Takes (dict "s" <scope> "a" <the caller's dict>). */}}
{{- define "micro-sidecar.sidecar.render" -}}
{{- $s := .s -}}
{{- $a := .a -}}
{{- $v := $s.Values.sidecar -}}
{{- if not $a.namespace -}}
{{- fail "micro-sidecar.sidecar: the dict needs \"namespace\" (the app's service name, MICRO_NAMESPACE)" -}}
{{- end -}}
{{- $t := include "micro-sidecar.sidecar.timing" . | fromYaml -}}
{{- $appUrl := $a.appUrl | default (printf "http://127.0.0.1:%d" (int64 ($a.appPort | default 8080))) -}}
{{- $healthPath := $v.appHealth.path -}}
{{- if hasKey $a "appHealthPath" }}{{ $healthPath = $a.appHealthPath }}{{ end -}}
{{- $routes := $a.routes | default list -}}
{{- if kindIs "string" $routes }}{{ $routes = splitList "," $routes }}{{ end -}}
- name: {{ $a.name | default "micro-sidecar" }}
  image: {{ include "micro-sidecar.image" $s | quote }}
  imagePullPolicy: {{ $s.Values.image.pullPolicy }}
  {{- if $t.native }}
  # A native sidecar: started before the app containers (which wait for the
  # startupProbe), kept running beside them, stopped after them.
  restartPolicy: Always
  {{- end }}
  command:
    - micro-sidecar
  # Timing flags as arguments (flag > environment > config file > default).
  args:
    - --request-timeout-ms={{ int64 $v.requestTimeoutMs }}
    - --retries={{ int64 $v.retries }}
    - --registry-lookup-timeout-ms={{ int64 $v.registryLookupTimeoutMs }}
    - --heartbeat-interval-ms={{ int64 $v.heartbeatIntervalMs }}
    - --reconnect-interval-ms={{ int64 $v.reconnectIntervalMs }}
    - --breaker-cooldown-ms={{ int64 $v.breakerCooldownMs }}
    - --shutdown-grace-ms={{ int64 $v.shutdownGraceMs }}
    {{- if $healthPath }}
    - --app-health-interval-ms={{ int64 $v.appHealth.intervalMs }}
    - --app-health-timeout-ms={{ int64 $v.appHealth.timeoutMs }}
    - --app-health-threshold={{ int64 $v.appHealth.threshold }}
    {{- end }}
    {{- range (concat ($v.extraArgs | default list) ($a.extraArgs | default list)) }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: MICRO_NAMESPACE
      value: {{ $a.namespace | quote }}
    - name: MICRO_REGISTRY
      value: {{ include "micro-sidecar.registry.address" $s | quote }}
    # The address peers dial: the pod IP (used when MICRO_ADVERTISE_HOST is unset).
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    {{- with $v.advertiseHost }}
    - name: MICRO_ADVERTISE_HOST
      value: {{ . | quote }}
    {{- end }}
    - name: MICRO_APP_URL
      value: {{ $appUrl | quote }}
    {{- if $healthPath }}
    # Health checks of the app: failing ones take the instance out of the registry.
    - name: MICRO_APP_HEALTH_URL
      value: {{ printf "%s%s" (trimSuffix "/" $appUrl) $healthPath | quote }}
    {{- end }}
    {{- if $routes }}
    - name: MICRO_ROUTES
      value: {{ join "," $routes | quote }}
    {{- end }}
    - name: MICRO_MESH_PORT
      value: {{ int64 $v.meshPort | quote }}
    - name: MICRO_MESH_BIND
      value: {{ $v.meshBind | quote }}
    - name: MICRO_API_PORT
      value: {{ int64 $v.apiPort | quote }}
    - name: MICRO_API_BIND
      value: {{ $v.apiBind | quote }}
    - name: MICRO_LOG_LEVEL
      value: {{ $v.logLevel | quote }}
    - name: MICRO_LOG_FORMAT
      value: {{ $v.logFormat | quote }}
    {{- with include "micro-sidecar.tokens.env" (dict "s" $s "which" (list "api" "app" "mesh")) | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with (concat ($v.extraEnv | default list) ($a.extraEnv | default list)) }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  # Only the mesh port is a containerPort: the local API (apiBind:apiPort) listens on
  # loopback, which the app containers share, and is not reachable on the pod IP.
  ports:
    - name: mesh
      containerPort: {{ int64 $v.meshPort }}
      protocol: TCP
  {{- if $t.native }}
  # Gates the app containers: they start once the sidecar has registered.
  startupProbe:
    httpGet:
      path: /-/ready
      port: mesh
    periodSeconds: {{ int64 $v.startupProbe.periodSeconds }}
    timeoutSeconds: {{ int64 $v.startupProbe.timeoutSeconds }}
    failureThreshold: {{ int64 $v.startupProbe.failureThreshold }}
  {{- end }}
  # Process alive; never depends on the registry or the app.
  livenessProbe:
    httpGet:
      path: /-/health
      port: mesh
    periodSeconds: {{ int64 $v.livenessProbe.periodSeconds }}
    timeoutSeconds: {{ int64 $v.livenessProbe.timeoutSeconds }}
    failureThreshold: {{ int64 $v.livenessProbe.failureThreshold }}
  # Registered since start and not shutting down.
  readinessProbe:
    httpGet:
      path: /-/ready
      port: mesh
    periodSeconds: {{ int64 $v.readinessProbe.periodSeconds }}
    timeoutSeconds: {{ int64 $v.readinessProbe.timeoutSeconds }}
    failureThreshold: {{ int64 $v.readinessProbe.failureThreshold }}
  {{- if and (gt (int64 $t.preStop) 0) (ne $v.preStop.mode "none") }}
  # Keeps the sidecar fully up for {{ $t.preStop }} s before kubelet sends SIGTERM, which
  # starts the --shutdown-grace-ms drain. The pod's terminationGracePeriodSeconds must
  # cover it: see the "micro-sidecar.terminationGracePeriodSeconds" helper.
  lifecycle:
    preStop:
      {{- if eq $v.preStop.mode "sleep" }}
      sleep:
        seconds: {{ $t.preStop }}
      {{- else }}
      exec:
        command:
          - sleep
          - {{ $t.preStop | quote }}
      {{- end }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "micro-sidecar.containerSecurityContext" $s | nindent 4 }}
{{- end -}}

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
  <per-pod settings>  any key of "micro-sidecar.sidecar.podSettings" below (the
                      sidecar.* value of the same name for this pod only), e.g.
                      "inboundRps" 100 "breakerPolicy" "consecutive"; checked against
                      the binary's bounds

  Any other key fails the render (a misspelt key is never ignored).

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
{{- include "micro-sidecar.sidecar.checkDict" . -}}
{{- end -}}

{{/*
The sidecar.* values a pod may override in the include's dict (same key), with the
binary's bounds ([min, max], as in `micro-sidecar --help` and values.schema.json) or its
choices. Internal; YAML.
*/}}
{{- define "micro-sidecar.sidecar.podSettings" -}}
requestTimeoutMs: [1, 86400000]
retries: [0, 10]
appTimeoutMs: [1, 86400000]
shutdownGraceMs: [0, 3600000]
breakerPolicy: [reference, consecutive]
breakerCooldownMs: [0, 86400000]
breakerFailures: [1, 1000]
breakerResetMs: [1, 86400000]
inboundRps: [0, 10000000]
inboundBurst: [0, 10000000]
outboundRps: [0, 10000000]
outboundBurst: [0, 10000000]
maxInflight: [0, 10000000]
namespaceConcurrency: [0, 10000000]
connectionInflight: [0, 10000000]
maxConnections: [1, 1000000]
appMaxConnections: [1, 100000]
maxBodyBytes: [1024, 268435456]
{{- end -}}

{{/* Refuses unknown keys and out-of-bounds per-pod settings in a public template's dict. */}}
{{- define "micro-sidecar.sidecar.checkDict" -}}
{{- $settings := include "micro-sidecar.sidecar.podSettings" . | fromYaml -}}
{{- $known := list "namespace" "root" "appPort" "appUrl" "routes" "name" "native" "appHealthPath" "appShutdownSeconds" "extraEnv" "extraArgs" "subchart" -}}
{{- range $k, $val := . -}}
{{- if hasKey $settings $k -}}
{{- $b := index $settings $k -}}
{{- if kindIs "string" (first $b) -}}
{{- if not (has $val $b) -}}
{{- fail (printf "micro-sidecar sidecar templates: dict key %q must be one of %s (got %v)" $k (join ", " $b) $val) -}}
{{- end -}}
{{- else if not (or (kindIs "int" $val) (kindIs "int64" $val) (and (kindIs "float64" $val) (eq $val (floor $val))) (and (eq (typeOf $val) "json.Number") (regexMatch "^-?[0-9]+$" (toString $val)))) -}}
{{- fail (printf "micro-sidecar sidecar templates: dict key %q must be an integer (got %v, %s)" $k $val (typeOf $val)) -}}
{{- else if or (lt (int64 $val) (int64 (first $b))) (gt (int64 $val) (int64 (last $b))) -}}
{{- fail (printf "micro-sidecar sidecar templates: dict key %q must be between %d and %d (got %v)" $k (int64 (first $b)) (int64 (last $b)) $val) -}}
{{- end -}}
{{- else if not (has $k $known) -}}
{{- fail (printf "micro-sidecar sidecar templates: unknown dict key %q (known: %s, %s)" $k (join ", " $known) (join ", " (keys $settings | sortAlpha))) -}}
{{- end -}}
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
{{- $graceMs := $v.shutdownGraceMs -}}
{{- if hasKey .a "shutdownGraceMs" }}{{ $graceMs = .a.shutdownGraceMs }}{{ end -}}
{{- $grace := div (add (int64 $graceMs) 999) 1000 -}}
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
{{- /* $e: sidecar.* with this pod's overrides from the dict (podSettings keys). */ -}}
{{- $e := dict -}}
{{- range $k, $val := $v }}{{ $_ := set $e $k $val }}{{ end -}}
{{- range $k, $_ := include "micro-sidecar.sidecar.podSettings" . | fromYaml -}}
{{- if hasKey $a $k }}{{ $_ := set $e $k (index $a $k) }}{{ end -}}
{{- end -}}
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
  # The tunables as arguments (flag > environment > config file > default); addresses,
  # ports and logs are in env below.
  args:
    # Calls
    - --request-timeout-ms={{ int64 $e.requestTimeoutMs }}
    - --retries={{ int64 $e.retries }}
    - --app-timeout-ms={{ int64 $e.appTimeoutMs }}
    - --shutdown-grace-ms={{ int64 $e.shutdownGraceMs }}
    # Registry and peer connections
    - --registry-lookup-timeout-ms={{ int64 $e.registryLookupTimeoutMs }}
    - --heartbeat-interval-ms={{ int64 $e.heartbeatIntervalMs }}
    - --reconnect-interval-ms={{ int64 $e.reconnectIntervalMs }}
    - --handshake-timeout-ms={{ int64 $e.handshakeTimeoutMs }}
    # Memory budgets over all connections, and the deadlines that free them
    - --app-queue-bytes={{ int64 $e.appQueueBytes }}
    - --max-assembly-bytes={{ int64 $e.maxAssemblyBytes }}
    - --max-queued-bytes={{ int64 $e.maxQueuedBytes }}
    - --frame-timeout-ms={{ int64 $e.frameTimeoutMs }}
    - --send-stall-timeout-ms={{ int64 $e.sendStallTimeoutMs }}
    - --idle-timeout-ms={{ int64 $e.idleTimeoutMs }}
    - --namespace-ttl-ms={{ int64 $e.namespaceTtlMs }}
    - --max-namespaces={{ int64 $e.maxNamespaces }}
    - --dns-timeout-ms={{ int64 $e.dnsTimeoutMs }}
    - --dns-cache-ms={{ int64 $e.dnsCacheMs }}
    # Peers must come from the address they claim (docs/SECURITY.md)
    - --verify-peer-address={{ $v.verifyPeerAddress }}
    # Circuit breaking (docs/CIRCUIT-BREAKER.md)
    - --breaker-policy={{ $e.breakerPolicy }}
    - --breaker-cooldown-ms={{ int64 $e.breakerCooldownMs }}
    {{- if eq $e.breakerPolicy "consecutive" }}
    - --breaker-failures={{ int64 $e.breakerFailures }}
    - --breaker-reset-ms={{ int64 $e.breakerResetMs }}
    {{- end }}
    # Rate limits, 0 = none (docs/RATE-LIMITS.md)
    - --inbound-rps={{ int64 $e.inboundRps }}
    - --inbound-burst={{ int64 $e.inboundBurst }}
    - --outbound-rps={{ int64 $e.outboundRps }}
    - --outbound-burst={{ int64 $e.outboundBurst }}
    # In-flight limits, 0 = none, and sizes (docs/CONCURRENCY.md)
    - --max-inflight={{ int64 $e.maxInflight }}
    - --namespace-concurrency={{ int64 $e.namespaceConcurrency }}
    - --connection-inflight={{ int64 $e.connectionInflight }}
    - --max-connections={{ int64 $e.maxConnections }}
    - --app-max-connections={{ int64 $e.appMaxConnections }}
    - --max-body-bytes={{ int64 $e.maxBodyBytes }}
    {{- if $healthPath }}
    # App health checks (docs/HEALTH-CHECKS.md)
    - --app-health-interval-ms={{ int64 $v.appHealth.intervalMs }}
    - --app-health-timeout-ms={{ int64 $v.appHealth.timeoutMs }}
    - --app-health-threshold={{ int64 $v.appHealth.threshold }}
    {{- end }}
    {{- with (concat ($v.extraArgs | default list) ($a.extraArgs | default list)) }}
    # extraArgs (for a repeated flag, the last one counts)
    {{- range . }}
    - {{ . | quote }}
    {{- end }}
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

# cluster/env.sh — sourced (bash) by cluster/cluster.sh and tests/e2e/run.sh before they read a setting.
# The tooling's variables are KEDA_DEMO_*. The KDEMO_* names they had before are read for one
# release: each one set is exported under its new name, unless that is set too (the new name wins),
# and unset, with a warning on stderr.
keda_demo_old_env() {
  local suffix old new
  for suffix in STATE RUN CACHE BRIDGE NET APP_PORT IMAGEBUILD_ARGS SETS; do
    old=KDEMO_$suffix new=KEDA_DEMO_$suffix
    [ -n "${!old+set}" ] || continue
    if [ -n "${!new+set}" ]; then
      echo "$old is deprecated, use $new; read for one release (ignored: $new is set)" >&2
    else
      echo "$old is deprecated, use $new; read for one release" >&2
      export "$new=${!old}"
    fi
    unset "$old"
  done
}
keda_demo_old_env

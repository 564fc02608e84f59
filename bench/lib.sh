# Shared by the bench scripts (sourced, not run).

# cluster_cpu DIR: user + system CPU seconds used so far by the nodes that cluster/up started
# in DIR (its node*.pid files).
cluster_cpu() {
  local total=0 pidfile
  for pidfile in "$1"/node*.pid; do
    total=$(awk -v t="$total" '{ sub(/.*\) /, ""); split($0, f, " "); print t + (f[12] + f[13]) / 100 }' "/proc/$(cat "$pidfile")/stat")
  done
  echo "$total"
}

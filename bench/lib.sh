# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run; before cluster/up, whose nodes inherit the
# environment).

# A load generator recovering the same accounts from one address is what the recovery rate
# limits (on by default, cluster/node.example.toml) are there to stop: benchmark clusters run
# without them. The connection and in-flight limits stay at their defaults.
export BKV_LIMITS__RECOVER_PER_ACCOUNT_PER_MIN=0
export BKV_LIMITS__RECOVER_PER_ADDRESS_PER_MIN=0

# cluster_cpu DIR: user + system CPU seconds used so far by the nodes that cluster/up started
# in DIR (its node*.pid files).
cluster_cpu() {
  local total=0 pidfile
  for pidfile in "$1"/node*.pid; do
    total=$(awk -v t="$total" '{ sub(/.*\) /, ""); split($0, f, " "); print t + (f[12] + f[13]) / 100 }' "/proc/$(cat "$pidfile")/stat")
  done
  echo "$total"
}

#!/usr/bin/env bash
# CPU seconds used so far by every running postgres process (user + system, with their
# reaped children): run before and after a benchmark and subtract.
tot=0; hz=$(getconf CLK_TCK)
for p in $(pgrep -x postgres); do
  read -r u s cu cs < <(awk '{print $14, $15, $16, $17}' /proc/$p/stat 2>/dev/null) || continue
  tot=$((tot + u + s + cu + cs))
done
echo "scale=2; $tot / $hz" | bc

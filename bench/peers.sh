# bench/peers.sh: sourced by the bench/run_*.sh scripts that compare with Python peers.
# peer_python BUILD: the interpreter with the pinned PyPI peers (scripts/install-deps.sh --dev
# makes BUILD/venv; BENCH_PEER_PYTHON overrides), else Debian's python3 (torch 1.13, PyAV 10),
# else nothing (the caller says the peers are skipped).
peer_python() {
  if [[ -n "${BENCH_PEER_PYTHON:-}" ]]; then
    echo "$BENCH_PEER_PYTHON"
  elif [[ -x "$1/venv/bin/python" ]]; then
    echo "$1/venv/bin/python"
  elif [[ -x /usr/bin/python3 ]]; then
    echo /usr/bin/python3
  fi
}

# peer_version PYTHON MODULE: the module's version, or empty when it does not import.
peer_version() {
  "$1" -c "import $2; print($2.__version__)" 2>/dev/null | tail -1
}

# load_average: the 1-minute load, printed beside every timing on a shared machine.
load_average() { cut -d' ' -f1 /proc/loadavg; }

# json_num KEY: the number after "KEY": in the JSON line on stdin.
json_num() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }

# median of the numbers given as arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
  else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ratio A B: A / B with two decimals ("nan" if B is empty or 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "nan" }'; }

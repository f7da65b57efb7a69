# Sourced by cpu_queue.sh and gpu_window.sh: parse "RECIPE BUDGET METHOD... [-- key=value ...]" from the
# caller's arguments into $recipe, $budget and methods=(...), leaving the key=value overrides in "$@".
if [ $# -lt 3 ]; then
    echo "usage: bash training/$(basename "$0") RECIPE BUDGET METHOD... [-- key=value ...]" >&2
    exit 2
fi
recipe=$1 budget=$2
shift 2
methods=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do methods+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift

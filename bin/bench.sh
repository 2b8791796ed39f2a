#!/usr/bin/env bash
# Measures heaptide's overhead against bare jemalloc and prints Markdown tables for the README.
#
#   bin/bench.sh [--quick] [driver options]     e.g. bin/bench.sh --rounds 9 --only churn,json
#
# 1. builds the bench binaries (cargo bench --no-run);
# 2. wall time: benches/overhead.rs runs the same workloads built three ways (bare
#    tikv-jemallocator, Heaptide::new(), Heaptide::new().exact()), plus the default build with
#    HEAPTIDE_SAMPLE=off (the same binary, profiling off), interleaved in one run, and prints
#    medians, ratios against bare, and default against off; then each mode's peak RSS;
# 3. instructions per malloc+free pair: valgrind --tool=callgrind on instr_bare and
#    instr_heaptide at two loop counts, subtracted, so start-up and exit cancel out;
# 4. instructions per sampled pair and per sampled free: instr_heaptide with every allocation
#    sampled (HEAPTIDE_SAMPLE=1), the same subtraction, each count the median of 3 runs;
# 5. instructions per op of each workload, bare against default (callgrind again, 1 and 3
#    timed reps subtracted): repeatable where the wall-time ratios of a shared machine are not.
#
# Progress goes to stderr, the tables to stdout. About 3-4 minutes on a 2-core machine once
# built (longer when other processes load it). Environment: ROUNDS (driver rounds, default 9),
# N1/N2 (callgrind loop counts, default 1000000/2000000), S1/S2 (sampled loop counts, default
# 50000/100000), SKIP_WALL=1, SKIP_CALLGRIND=1, SKIP_WORKLOADS=1 (steps 1-4 only).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${ROUNDS:-9}
n1=${N1:-1000000}
n2=${N2:-2000000}
s1=${S1:-50000}
s2=${S2:-100000}
driver_args=()
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) rounds=3; driver_args+=(--scale 0.3 --reps 2); n1=200000; n2=400000; s1=20000; s2=40000; quick=1 ;;
        *) driver_args+=("$1") ;;
    esac
    shift
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

benches=(overhead alloc_bare alloc_default alloc_exact instr_bare instr_heaptide)
if [ "${SKIP_WALL:-0}" = 1 ] && [ "${SKIP_WORKLOADS:-0}" = 1 ]; then
    # Only the pair loops run.
    benches=(instr_bare instr_heaptide)
fi
echo "bench.sh: building ${benches[*]}" >&2
bench_flags=()
for b in "${benches[@]}"; do bench_flags+=(--bench "$b"); done
cargo bench --no-run --message-format=json-render-diagnostics "${bench_flags[@]}" >"$tmp/build.json"

# The executable of a bench target, from cargo's JSON messages (no jq needed).
exe() {
    grep '"reason":"compiler-artifact"' "$tmp/build.json" \
        | grep "\"name\":\"$1\"" \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' \
        | tail -n 1
}
for b in "${benches[@]}"; do
    path=$(exe "$b")
    if [ -z "$path" ] || [ ! -x "$path" ]; then
        echo "bench.sh: no executable for bench target $b (is its [[bench]] entry in Cargo.toml?)" >&2
        exit 1
    fi
    printf -v "bin_$b" '%s' "$path"
done

echo "## Overhead against bare jemalloc"
echo
echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores ($(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo | head -n 1)), $(rustc --version), heaptide $(git rev-parse --short HEAD 2>/dev/null || echo '?'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)."
echo

if [ "${SKIP_WALL:-0}" != 1 ]; then
    echo "bench.sh: wall time, $rounds rounds" >&2
    echo "### Time per op (bare, default, exact run interleaved)"
    echo
    # ${arr[@]+...} keeps `set -u` quiet on an empty array with old bash.
    "$bin_overhead" --bare "$bin_alloc_bare" --default "$bin_alloc_default" --exact "$bin_alloc_exact" \
        --rounds "$rounds" ${driver_args[@]+"${driver_args[@]}"}
    echo
fi

if [ "${SKIP_CALLGRIND:-0}" = 1 ]; then
    exit 0
fi
if ! command -v valgrind >/dev/null; then
    echo "bench.sh: valgrind not found; skipping instruction counts (apt-get install valgrind)" >&2
    exit 0
fi

# Total instructions (all threads) of one run under callgrind.
instructions() { # label, binary, N, env...
    local label=$1 bin=$2 n=$3
    shift 3
    loop_instructions "$label" "$bin" pairs "$n" "$@"
}

# The same for one loop of workloads/pairs.rs: pairs, allocs or frees.
loop_instructions() { # label, binary, loop, N, env...
    local label=$1 bin=$2 loop=$3 n=$4
    shift 4
    local out="$tmp/cg.$label.$loop.$n"
    env -u HEAPTIDE_SAMPLE -u HEAPTIDE_DEPTH -u HEAPTIDE_SEED "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$loop" "$n" 2>"$out.err" >/dev/null || {
        echo "bench.sh: callgrind run $label $loop $n failed:" >&2
        cat "$out.err" >&2
        exit 1
    }
    if grep -q 'heaptide:' "$out.err"; then
        echo "bench.sh: heaptide complained under valgrind ($label):" >&2
        grep 'heaptide:' "$out.err" >&2
        exit 1
    fi
    sed -n 's/^summary: *//p' "$out"
}

# jemalloc as a program without heaptide has it: tikv-jemallocator's default features, without
# the statistics heaptide turns on (Cargo unifies features within a package, so instr_bare has
# them too). A separate package, so its jemalloc is built without `stats`.
echo "bench.sh: building benches/baseline (jemalloc without statistics)" >&2
cargo build --release --quiet --manifest-path benches/baseline/Cargo.toml \
    --target-dir benches/baseline/target
bin_instr_bare_nostats=benches/baseline/target/release/instr_bare_nostats

echo "bench.sh: callgrind, N = $n1 and $n2" >&2
echo "### Instructions per malloc+free pair (16 B, \`std::alloc::alloc\`/\`dealloc\`)"
echo
echo "\`valgrind --tool=callgrind\`, all threads; (instructions at N = $n2 minus at N = $n1) / $((n2 - n1)), so start-up, initialisation and exit cancel out."
echo
echo "| allocator | Ir, N = $n1 | Ir, N = $n2 | instructions per pair | vs bare |"
echo "|---|---:|---:|---:|---:|"
bare_per=""
row() { # label, description, binary, env...
    local label=$1 desc=$2 bin=$3
    shift 3
    local i1 i2 per
    i1=$(instructions "$label" "$bin" "$n1" "$@")
    i2=$(instructions "$label" "$bin" "$n2" "$@")
    per=$(awk -v a="$i1" -v b="$i2" -v d="$((n2 - n1))" 'BEGIN { printf "%.2f", (b - a) / d }')
    if [ -z "$bare_per" ]; then
        bare_per=$per
        delta="-"
    else
        delta=$(awk -v p="$per" -v b="$bare_per" 'BEGIN { printf "%+.2f", p - b }')
    fi
    echo "| $desc | $i1 | $i2 | $per | $delta |"
    printf -v "per_$label" '%s' "$per"
}
row bare "bare tikv-jemallocator (with jemalloc statistics, as heaptide builds it)" "$bin_instr_bare"
row nostats "bare tikv-jemallocator, default features (no statistics: a program without heaptide)" "$bin_instr_bare_nostats"
row default "heaptide default (1 sample / 512 KiB, seed 1)" "$bin_instr_heaptide" HEAPTIDE_SEED=1
row off "heaptide, \`HEAPTIDE_SAMPLE=off\` (countdown never fires, range test always false)" "$bin_instr_heaptide" HEAPTIDE_SAMPLE=off
row huge "heaptide, \`HEAPTIDE_SAMPLE=1TiB\` (sampling on, next sample point out of reach)" "$bin_instr_heaptide" HEAPTIDE_SAMPLE=1TiB HEAPTIDE_SEED=1
row labelled "heaptide, \`HEAPTIDE_SAMPLE=1TiB\`, the loop inside \`heaptide::label\` (\`INSTR_LABEL=1\`)" "$bin_instr_heaptide" HEAPTIDE_SAMPLE=1TiB HEAPTIDE_SEED=1 INSTR_LABEL=1
echo
# shellcheck disable=SC2154 # set by printf -v in row
awk -v d="$per_default" -v o="$per_off" -v h="$per_huge" -v b="$bare_per" -v n="$per_nostats" 'BEGIN {
    printf "Unsampled path (sampling on, no sample point crossed): %+.2f instructions per pair against bare jemalloc with statistics (heaptide'"'"'s own cost), %+.2f against jemalloc without them (what a program pays to switch to heaptide: heaptide plus jemalloc'"'"'s statistics, %+.2f). Target: within +15.\n", h - b, h - n, b - n
    printf "Default sampling adds %+.2f per pair on top of that: its samples (one per 32,768 pairs of 16 B on average), amortised, and the drain thread.\n", d - h
}'
# shellcheck disable=SC2154 # set by printf -v in row
awk -v l="$per_labelled" -v h="$per_huge" 'BEGIN {
    printf "A label on the allocating thread changes the unsampled path by %+.2f instructions per pair (the label is read only when a sample is taken).\n", l - h
}'

# The median of three runs of one loop: with every allocation sampled, the drain thread's
# passes (it polls at these rates) and the allocating thread's own passes (`try_help`, when its
# ring is full) split the work differently from run to run, and now and then a run counts
# tens of millions more instructions (spinning while the other side holds the drain lock).
median_instructions() { # label, loop, N, env...
    local label=$1 loop=$2 n=$3
    shift 3
    local runs=()
    for i in 1 2 3; do
        runs+=("$(loop_instructions "$label.$i" "$bin_instr_heaptide" "$loop" "$n" "$@")")
    done
    printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p
}

echo
echo "bench.sh: callgrind, sampled pairs and frees, N = $s1 and $s2" >&2
echo "### Instructions per sampled pair and per sampled free (16 B, every allocation sampled)"
echo
echo "\`instr_heaptide\` with \`HEAPTIDE_SAMPLE=1 HEAPTIDE_SEED=1\`, all threads (the drain's work included); (instructions at N = $s2 minus at N = $s1) / $((s2 - s1)), each count the median of 3 runs. A sampled free is \`frees\` (N allocations, then their N frees) minus \`allocs\` (the N allocations alone)."
echo
echo "| loop | Ir, N = $s1 | Ir, N = $s2 | instructions per op |"
echo "|---|---:|---:|---:|"
declare -A sampled
for loop in pairs allocs frees; do
    a=$(median_instructions "sampled" "$loop" "$s1" HEAPTIDE_SAMPLE=1 HEAPTIDE_SEED=1)
    b=$(median_instructions "sampled" "$loop" "$s2" HEAPTIDE_SAMPLE=1 HEAPTIDE_SEED=1)
    sampled[$loop]=$(awk -v a="$a" -v b="$b" -v d="$((s2 - s1))" 'BEGIN { printf "%.1f", (b - a) / d }')
    echo "| $loop | $a | $b | ${sampled[$loop]} |"
done
a=$(median_instructions "labelled" pairs "$s1" HEAPTIDE_SAMPLE=1 HEAPTIDE_SEED=1 INSTR_LABEL=1)
b=$(median_instructions "labelled" pairs "$s2" HEAPTIDE_SAMPLE=1 HEAPTIDE_SEED=1 INSTR_LABEL=1)
sampled[labelled]=$(awk -v a="$a" -v b="$b" -v d="$((s2 - s1))" 'BEGIN { printf "%.1f", (b - a) / d }')
echo "| pairs inside \`heaptide::label\` (\`INSTR_LABEL=1\`) | $a | $b | ${sampled[labelled]} |"
echo
awk -v p="${sampled[pairs]}" -v a="${sampled[allocs]}" -v f="${sampled[frees]}" 'BEGIN {
    printf "A sampled alloc+free pair: %.1f instructions; a sampled free (frees minus allocs): %.1f.\n", p, f - a
}'

if [ "${SKIP_WORKLOADS:-0}" = 1 ]; then
    exit 0
fi

# Instructions of one workload run under callgrind: "ops Ir" (ops of one timed rep).
workload_instructions() { # label, binary, workload, scale, reps, env...
    local label=$1 bin=$2 w=$3 scale=$4 reps=$5
    shift 5
    local out="$tmp/cgw.$label.$w.$reps"
    env -u HEAPTIDE_SAMPLE -u HEAPTIDE_DEPTH -u HEAPTIDE_SEED "$@" \
        valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" --workload "$w" --warmup 1 --reps "$reps" --scale "$scale" --no-stats 2>"$out.err" >"$out.stdout" || {
        echo "bench.sh: callgrind run $label $w failed:" >&2
        cat "$out.err" >&2
        exit 1
    }
    echo "$(awk -F'\t' '$1 == "RESULT" { print $4; exit }' "$out.stdout") $(sed -n 's/^summary: *//p' "$out")"
}

echo
echo "bench.sh: callgrind, workloads" >&2
echo "### Instructions per op of each workload (callgrind, all threads)"
echo
echo "Each workload run with one warm-up repetition and then 1 or 3 timed repetitions; the difference, divided by the ops of 2 repetitions, is the steady-state cost per op. Deterministic for bare; for heaptide (\`HEAPTIDE_SEED=1\`) it includes the samples taken and the drain thread's passes (no report is taken). realloc varies from run to run even on bare jemalloc (its time-based decay decides whether large blocks grow in place)."
echo
echo "| workload | bare: instructions per op | heaptide default: instructions per op | default / bare |"
echo "|---|---:|---:|---:|"
for spec in churn:0.025 prodcons:0.05 realloc:0.05 json:0.05 words:0.05; do
    w=${spec%%:*}
    scale=${spec#*:}
    [ "$quick" = 1 ] && scale=$(awk -v s="$scale" 'BEGIN { print s / 4 }')
    per=()
    for mode in bare default; do
        bin_var="bin_alloc_$mode"
        # One warm-up rep then 1 or 3 timed reps: the difference is 2 reps of the workload.
        r1=$(workload_instructions "$mode" "${!bin_var}" "$w" "$scale" 1 HEAPTIDE_SEED=1)
        r3=$(workload_instructions "$mode" "${!bin_var}" "$w" "$scale" 3 HEAPTIDE_SEED=1)
        read -r ops i1 <<<"$r1"
        read -r _ i3 <<<"$r3"
        per+=("$(awk -v a="$i1" -v b="$i3" -v n="$ops" 'BEGIN { printf "%.1f", (b - a) / (2 * n) }')")
    done
    ratio=$(awk -v b="${per[0]}" -v d="${per[1]}" 'BEGIN { printf "%.4f", d / b }')
    echo "| $w | ${per[0]} | ${per[1]} | $ratio |"
done

#!/usr/bin/env bash
# Runs two builds of the core's kernels bench (`core/benches/kernels.rs`)
# alternately for several rounds and prints, per round and binary, each
# solver's iteration against its memory-bandwidth floor (decision 115: the
# floor streams exactly the matrix passes the iteration makes, on the same
# allocation, in the same process), the σ = 0 iteration and (where the
# bench has the rows, decision 120) the iteration with the polar method's
# noise against the floor, and the new iteration against the old one. Only ratios within one run
# mean much on a shared VM (the floor itself moves by up to 30 % between
# minutes); the load average is printed beside every round.
#
#   tools/floor-rounds.sh OLD_BENCH NEW_BENCH [ROUNDS] [FILTER]
#
# OLD_BENCH / NEW_BENCH: the bench executables, as printed by
#   cargo bench -p bilevel-core --bench kernels --no-run
# ("Executable benches/kernels.rs (target/release/deps/kernels-…)"; copy the
# old one aside before building the new). ROUNDS defaults to 3, FILTER (a
# criterion regex) to 'd1000'. Each run is
#   BENCH --bench FILTER --sample-size 10 --measurement-time 1 --warm-up-time 0.5
# under `nice -n 10`, with its own CRITERION_HOME so the two builds do not
# compare against each other's saved results. Raw outputs are kept in
# $OUT (default: a new directory under /tmp).
set -euo pipefail

if [ $# -lt 2 ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 2
fi
old=$1
new=$2
rounds=${3:-3}
filter=${4:-d1000}
for b in "$old" "$new"; do
    if [ ! -x "$b" ]; then
        echo "floor-rounds: not an executable: $b" >&2
        exit 2
    fi
done
case $rounds in
    '' | *[!0-9]* | 0)
        echo "floor-rounds: ROUNDS must be a positive integer, got '$rounds'" >&2
        exit 2
        ;;
esac
out=${OUT:-$(mktemp -d /tmp/floor-rounds.XXXXXX)}
mkdir -p "$out"
echo "raw criterion output in $out"

# Criterion's median of each benchmark id, in ms: "id median".
medians() {
    awk '
        function ms(v, u) {
            if (u == "ns") return v / 1e6
            if (u == "µs" || u == "us") return v / 1e3
            if (u == "ms") return v
            if (u == "s") return v * 1e3
            return -1
        }
        /^[A-Za-z]/ && !/^(Benchmarking|Found|Warning|Gnuplot|AVX2|change|Performance|No change|Change)/ {
            name = $1
        }
        /time:/ {
            line = $0
            sub(/.*time: *\[/, "", line)
            sub(/\].*/, "", line)
            n = split(line, f, " ")
            if (n == 6 && name != "") print name, ms(f[3], f[4])
        }
    ' "$1"
}

# The table of one run: solver, T, floor, iteration, σ = 0, ratios.
table() {
    medians "$1" | awk '
        { t[$1] = $2 }
        END {
            for (k in t) {
                split(k, p, "/")
                if (p[1] == "floor") {
                    s = p[2]; rest = p[3] "/" p[4]
                    f = t[k]; i = t["iter/" s "/" rest]; z = t["iter/" s "-sigma0/" rest]
                    pp = t["iter/" s "-polar/" rest]
                    if (i == "" || z == "") continue
                    pol = (pp == "") ? "" : sprintf("  polar %9.3f ms  polar/floor %5.2f", pp, pp / f)
                    printf "%-8s %-10s floor %9.3f ms  iter %9.3f ms  sigma0 %9.3f ms  iter/floor %5.2f  sigma0/floor %5.2f%s\n",
                        s, rest, f, i, z, i / f, z / f, pol
                }
            }
        }
    ' | sort
}

for r in $(seq 1 "$rounds"); do
    for which in old new; do
        bin=$old
        [ "$which" = new ] && bin=$new
        log="$out/round$r-$which.txt"
        load=$(cut -d' ' -f1-3 /proc/loadavg)
        start=$(date -u +%H:%M:%S)
        CRITERION_HOME="$out/criterion-$which" nice -n 10 "$bin" --bench "$filter" \
            --sample-size 10 --measurement-time 1 --warm-up-time 0.5 >"$log" 2>&1 || {
            echo "floor-rounds: $which run failed, see $log" >&2
            exit 1
        }
        echo "== round $r, $which ($start UTC, load before $load, after $(cut -d' ' -f1-3 /proc/loadavg))"
        table "$log"
    done
    echo "== round $r, new iteration / old iteration (criterion medians)"
    medians "$out/round$r-old.txt" | grep '^iter/' | sort >"$out/round$r-old.medians"
    medians "$out/round$r-new.txt" | grep '^iter/' | sort >"$out/round$r-new.medians"
    join "$out/round$r-old.medians" "$out/round$r-new.medians" |
        awk '{ printf "%-28s old %9.3f ms  new %9.3f ms  new/old %5.3f\n", $1, $2, $3, $3 / $2 }'
done

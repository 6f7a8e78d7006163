# Shared helpers for scripts/run and scripts/test (sourced, not executed).

# Debian packages needed to build Starling (C libraries linked by the system-library targets).
STARLING_BUILD_PACKAGES=(librocksdb-dev liblz4-dev libsnappy-dev libssl-dev zlib1g-dev pkg-config git)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "error: need root (or sudo) to run: $*" >&2; exit 1
    fi
}

# Installs the given Debian packages that are not installed yet (apt-get update only if needed).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing Debian packages: ${missing[*]}" >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Puts swift on PATH (from /opt/swift when present) or explains how to get it.
ensure_swift() {
    if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null; then
        cat >&2 <<'MSG'
error: Swift 6.2 or newer is required and was not found (looked on PATH and in /opt/swift).
Install it from https://www.swift.org/install/linux/ (Debian 12 tarball or swiftly), e.g.:
    curl -O https://download.swift.org/swiftly/linux/swiftly-$(uname -m).tar.gz && tar zxf swiftly-*.tar.gz && ./swiftly init
then re-run this script.
MSG
        exit 1
    fi
}

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

# Debian packages the Swift toolchain itself needs (swift.org's list for Debian 12/13; g++ brings
# the distribution's libstdc++ and libgcc development files).
SWIFT_TOOLCHAIN_PACKAGES=(binutils ca-certificates curl git gnupg2 g++ libc6-dev libcurl4-openssl-dev libedit2
    libncurses-dev libpython3-dev libsqlite3-0 libxml2-dev libz3-dev pkg-config tzdata unzip zlib1g-dev)

# Puts swift on PATH: from PATH, /opt/swift, or a previous swiftly install; otherwise installs the
# latest release with swiftly (swift.org's installer, into ~/.local/share/swiftly, no root needed
# for the toolchain itself). Set STARLING_NO_SWIFT_INSTALL=1 to get an error instead.
ensure_swift() {
    local swiftly_env="${SWIFTLY_HOME_DIR:-$HOME/.local/share/swiftly}/env.sh"
    if ! command -v swift >/dev/null && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null && [ -f "$swiftly_env" ]; then
        . "$swiftly_env"
    fi
    if ! command -v swift >/dev/null && [ "${STARLING_NO_SWIFT_INSTALL:-0}" != 1 ]; then
        echo "==> Swift not found: installing the latest release with swiftly (https://www.swift.org/install/linux/)" >&2
        ensure_packages "${SWIFT_TOOLCHAIN_PACKAGES[@]}"
        local tmp
        tmp="$(mktemp -d)"
        if (cd "$tmp" && curl -fsSLO "https://download.swift.org/swiftly/linux/swiftly-$(uname -m).tar.gz" &&
            tar zxf "swiftly-$(uname -m).tar.gz" && ./swiftly init --assume-yes --quiet-shell-followup >&2); then
            . "$swiftly_env"
            hash -r
        fi
        rm -rf "$tmp"
    fi
    if ! command -v swift >/dev/null; then
        cat >&2 <<'MSG'
error: Swift 6.2 or newer is required and was not found (looked on PATH, in /opt/swift and in
swiftly's home), and installing it with swiftly failed or was disabled. Install it from
https://www.swift.org/install/linux/ (Debian tarball or swiftly), then re-run this script.
MSG
        exit 1
    fi
}

#!/usr/bin/env bash
# Regenerates Sources/StarlingProto/*.pb.swift from proto/**/*.proto.
#
# The generated Swift is committed: `swift build` never runs protoc. Run this script only when a
# .proto file under proto/ changes, then commit the .proto and the regenerated .pb.swift together.
#
# What it does:
#   1. installs Debian's `protobuf-compiler` (protoc) when it is missing (needs root / apt);
#   2. builds `protoc-gen-swift` from swift-protobuf $SWIFT_PROTOBUF_VERSION in a scratch
#      directory outside the repository (the version must match the SwiftProtobuf runtime that
#      Package.swift resolves, or the generated code may not compile against it);
#   3. runs protoc with `Visibility=Public` so other targets can use the messages.
#
# Environment:
#   SWIFT_PROTOBUF_VERSION  plugin version to build (default 1.39.0)
#   SCRATCH_DIR             where to build the plugin (default: ${TMPDIR:-/tmp}/starling-protoc-gen-swift)
#   PROTOC_GEN_SWIFT        use this prebuilt plugin instead of building one
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
scratch="${SCRATCH_DIR:-${TMPDIR:-/tmp}/starling-protoc-gen-swift}"
out_dir="$repo_root/Sources/StarlingProto"
proto_dir="$repo_root/proto"

case "$scratch" in
  "$repo_root"|"$repo_root"/*) echo "SCRATCH_DIR must be outside the repository" >&2; exit 1 ;;
esac

# 1. protoc
if ! command -v protoc >/dev/null 2>&1; then
  echo "==> installing protobuf-compiler (Debian)"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler
fi
echo "==> $(protoc --version)"

# 2. protoc-gen-swift
plugin="${PROTOC_GEN_SWIFT:-}"
if [ -z "$plugin" ]; then
  src="$scratch/swift-protobuf-$version"
  if [ ! -d "$src/.git" ]; then
    mkdir -p "$scratch"
    # Prefer the checkout SwiftPM already resolved for this package (no network needed) when it
    # is at the wanted tag; otherwise clone the tag.
    resolved="$repo_root/.build/checkouts/swift-protobuf"
    if [ -d "$resolved/.git" ] && [ "$(git -C "$resolved" describe --tags --exact-match 2>/dev/null || true)" = "$version" ]; then
      echo "==> copying swift-protobuf $version from .build/checkouts"
      git clone -q "$resolved" "$src"
      git -C "$src" checkout -q "$version"
    else
      echo "==> cloning swift-protobuf $version"
      git clone -q --depth 1 --branch "$version" https://github.com/apple/swift-protobuf.git "$src"
    fi
  fi
  echo "==> building protoc-gen-swift $version in $src"
  (cd "$src" && swift build -c release --product protoc-gen-swift >/dev/null)
  plugin="$(cd "$src" && swift build -c release --show-bin-path)/protoc-gen-swift"
fi
echo "==> $("$plugin" --version)"

# 3. generate
protos=()
while IFS= read -r f; do protos+=("$f"); done < <(cd "$proto_dir" && find . -name '*.proto' | sed 's|^\./||' | sort)
find "$out_dir" -name '*.pb.swift' -delete
tmp_out="$(mktemp -d)"
trap 'rm -rf "$tmp_out"' EXIT
protoc \
  --plugin="protoc-gen-swift=$plugin" \
  --proto_path="$proto_dir" \
  --swift_opt=Visibility=Public \
  --swift_opt=FileNaming=PathToUnderscores \
  --swift_out="$tmp_out" \
  "${protos[@]}"
cp "$tmp_out"/*.pb.swift "$out_dir"/
echo "==> generated:"
(cd "$out_dir" && ls -1 *.pb.swift)

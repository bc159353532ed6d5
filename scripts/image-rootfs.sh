#!/usr/bin/env bash
# The vouch image's file tree, the equivalent of distroless/cc: the `vouch` binary at /vouch, the shared
# libraries `ldd` names (copied from this Debian system, with the dynamic loader), CA certificates,
# passwd/group with the nonroot user 65532, /tmp, and for every Debian package a file was taken from its
# copyright file and its dpkg status under /var/lib/dpkg/status.d/ (as distroless keeps them, so scanners and
# the SBOM see them). Nothing else: no shell, no package manager.
#
#   scripts/image-rootfs.sh BINARY ROOTFS
#
# ROOTFS must not exist. Used by scripts/image.sh (daemonless) and by the Dockerfile, so both give the same
# tree. Owners are 0:0 except /home/nonroot (65532:65532): run as root. Timestamps are left to the caller.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BINARY ROOTFS" >&2; exit 2; }
binary=$1
root=$2
[ -x "$binary" ] || { echo "image-rootfs: $binary is not an executable file" >&2; exit 2; }
[ ! -e "$root" ] || { echo "image-rootfs: $root exists; give a new directory" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "image-rootfs: run as root (files are owned by 0 and 65532)" >&2; exit 2; }

umask 022
mkdir -p "$root"/etc/ssl/certs "$root"/var/lib/dpkg/status.d "$root"/usr/share/doc "$root"/home/nonroot
install -m 0755 "$binary" "$root/vouch"

# The libraries the binary loads, at the paths ldd names (the loader's own search path), as plain files.
# `ldd` lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and "/lib64/ld-linux-x86-64.so.2 (0x…)".
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
[ -n "$libs" ] || { echo "image-rootfs: ldd names no libraries for $binary (a static binary needs none; is it one?)" >&2; exit 1; }
packages=()
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  install -m 0755 "$(readlink -f "$lib")" "$root$lib"
  # dpkg knows a file by the path its package ships (merged /usr: /lib/... or /usr/lib/...).
  owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null || true)
  [ -n "$owner" ] || { echo "image-rootfs: no Debian package owns $lib" >&2; exit 1; }
  packages+=("${owner%%:*}")
done

# CA certificates: the certificates Debian's ca-certificates package ships, concatenated in name order, as
# update-ca-certificates would with every one enabled. Not the host's /etc/ssl/certs bundle: that one also
# holds whatever CAs the build machine added locally (/usr/local/share/ca-certificates).
certs=$(dpkg -L ca-certificates | grep '^/usr/share/ca-certificates/.*\.crt$' | LC_ALL=C sort)
[ -n "$certs" ] || { echo "image-rootfs: Debian's ca-certificates package is not installed" >&2; exit 1; }
for crt in $certs; do sed -e '$a\' "$crt"; done > "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$root/etc/ssl/certs/ca-certificates.crt"
packages+=(ca-certificates)

for pkg in $(printf '%s\n' "${packages[@]}" | sort -u); do
  name=${pkg%%:*}
  dpkg-query -s "$name" > "$root/var/lib/dpkg/status.d/$name"
  chmod 0644 "$root/var/lib/dpkg/status.d/$name"
  if [ -f "/usr/share/doc/$name/copyright" ]; then
    install -D -m 0644 "/usr/share/doc/$name/copyright" "$root/usr/share/doc/$name/copyright"
  fi
done

printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
  > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chmod 0644 "$root/etc/passwd" "$root/etc/group"
mkdir -m 1777 "$root/tmp"
chown 65532:65532 "$root/home/nonroot"
chmod 0700 "$root/home/nonroot"
find "$root" -type d -not -path "$root/tmp" -not -path "$root/home/nonroot" -exec chmod 0755 {} +

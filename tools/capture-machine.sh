#!/bin/sh
# capture-machine.sh - write an iomemfuzz machine file describing this machine.
#
# Run it as root on the machine to describe (real hardware, a VM, or the busybox guest of
# `iomemfuzz confirm`); it only reads /proc and /sys:
#
#     sudo sh tools/capture-machine.sh > my-laptop.machine
#     sudo sh tools/capture-machine.sh --name my-laptop --note "ThinkPad X1, BIOS 1.2" -o my-laptop.machine
#
# Then name it in a Program header (`# machine: file:my-laptop.machine`) or copy it into
# model/machines/ to ship it under its name. The format is described in
# docs/MACHINES.md; `iomemfuzz show` of a Program on the machine prints the same
# /proc/iomem and PCI device list as the capture.
#
# Without root, /proc/iomem and /proc/ioports show every range as 0-0 (the kernel hides
# addresses from readers without CAP_SYS_ADMIN) and the capture is refused.
#
# POSIX sh only (runs under dash and busybox sh); needs cat, sed, tr, uname, ls.

set -eu

name=""
notes=""
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name="$2"; shift 2 ;;
        --note) notes="${notes}${2}
"; shift 2 ;;
        -o|--output) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "capture-machine.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [ ! -r /proc/iomem ]; then
    echo "capture-machine.sh: /proc/iomem is not readable" >&2
    exit 1
fi
# The first range of /proc/iomem is never 0-0 for a privileged reader (it starts at 0 but
# ends above it); an unprivileged reader sees 00000000-00000000 on every line.
if [ "$(sed -n '1s/ :.*//p' /proc/iomem)" = "00000000-00000000" ]; then
    echo "capture-machine.sh: /proc/iomem shows no addresses: run as root" >&2
    exit 1
fi

[ -n "$name" ] || name="$(uname -n)"

# One sysfs attribute, or "-" when it does not exist.
attr() {
    if [ -r "$1" ]; then
        tr -d '\n' < "$1"
    else
        printf -- '-'
    fi
}

emit() {
    echo "iomemfuzz-machine 1"
    echo "# Written by tools/capture-machine.sh; format: docs/MACHINES.md"
    echo
    echo "[machine]"
    echo "name $name"
    echo "kernel $(uname -r)"
    echo "kernel-version $(tr -d '\n' < /proc/version)"
    echo "arch $(uname -m)"
    bits="$(sed -n 's/^address sizes[^0-9]*\([0-9]*\) bits physical.*/\1/p' /proc/cpuinfo | sed -n 1p)"
    [ -z "$bits" ] || echo "phys-bits $bits"
    if [ -r /sys/class/dmi/id/sys_vendor ]; then
        echo "dmi $(attr /sys/class/dmi/id/sys_vendor) / $(attr /sys/class/dmi/id/product_name) / $(attr /sys/class/dmi/id/bios_version)"
    fi
    echo "cmdline $(tr -d '\n' < /proc/cmdline)"
    if [ -n "$notes" ]; then
        printf '%s' "$notes" | while IFS= read -r line; do
            echo "note $line"
        done
    fi
    echo
    echo "[iomem]"
    cat /proc/iomem
    echo
    echo "[ioports]"
    cat /proc/ioports
    if [ -d /sys/bus/pci/devices ]; then
        for dev in /sys/bus/pci/devices/*; do
            [ -e "$dev/resource" ] || continue
            echo
            echo "[pci ${dev##*/}]"
            echo "vendor $(attr "$dev/vendor")"
            echo "device $(attr "$dev/device")"
            echo "subsystem $(attr "$dev/subsystem_vendor") $(attr "$dev/subsystem_device")"
            echo "class $(attr "$dev/class")"
            echo "revision $(attr "$dev/revision")"
            if [ -L "$dev/driver" ]; then
                drv="$(ls -l "$dev/driver")"
                echo "driver ${drv##*/}"
            else
                echo "driver -"
            fi
            # One line per resource: its index (0-5 BARs, 6 the ROM, 7 and up bridge
            # windows or SR-IOV BARs), then start, end and flags as the kernel prints them.
            # Unimplemented resources (all zero) are left out.
            i=0
            while IFS= read -r line; do
                case "$line" in
                    "0x0000000000000000 0x0000000000000000 0x0000000000000000") ;;
                    *) echo "resource $i $line" ;;
                esac
                i=$((i + 1))
            done < "$dev/resource"
        done
    fi
}

if [ -n "$out" ]; then
    emit > "$out"
else
    emit
fi

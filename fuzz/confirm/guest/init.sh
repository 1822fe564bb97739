#!/bin/busybox sh
# /init of the iomemfuzz confirm guest: a busybox initramfs that fuzz/confirm/guest.py
# builds. It runs the helper on the second serial port (machine captures run through it).
#
# Kernel command line words it reads:
#   iomemfuzz.load=A,B       kernel modules to load first, in order (from /lib/iomemfuzz)
#   iomemfuzz.autoprobe=0|1  /sys/bus/pci/drivers_autoprobe once the modules are in (default:
#                            left as the kernel starts it, 1, as the model's kernel starts)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mkdir -p /tmp && mount -t tmpfs tmpfs /tmp

arg() {
    sed -n "s/.*iomemfuzz\.$1=\([^ ]*\).*/\1/p" /proc/cmdline
}

autoprobe="$(arg autoprobe)"
[ -n "$autoprobe" ] && echo "$autoprobe" > /sys/bus/pci/drivers_autoprobe
for m in $(arg load | tr , ' '); do
    insmod "/lib/iomemfuzz/$m.ko"
done
# Messages so far (boot, module loads) are not the Program's: start the log afresh.
dmesg -c > /tmp/boot-dmesg

stty -F /dev/ttyS1 raw -echo 2>/dev/null
# The helper answers on the second serial port until the host sends "quit".
/iomemfuzz-helper < /dev/ttyS1 > /dev/ttyS1 2>&1
sync
poweroff -f

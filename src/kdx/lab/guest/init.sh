#!/bin/busybox sh
# /init of the lab guest. One script, two roles:
#  - first kernel: make the system look lived in, load the kdump capture kernel if asked,
#    then run the scenario's trigger, which crashes the kernel;
#  - capture kernel (it has /proc/vmcore): save the dump with makedumpfile to a raw disk.
# The host reads "KDX-LAB:" lines on the serial console to follow along.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /run /mnt/scratch
mount -t tmpfs tmpfs /tmp

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^kdx\.$1=//p" | tail -n 1; }
say() { echo "KDX-LAB: $*"; }
wait_dev() { n=0; while [ ! -b "$1" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done; }

capture() {
    say "capture kernel up"
    modprobe virtio_pci; modprobe virtio_blk
    wait_dev /dev/vdb; wait_dev /dev/vdc
    flags=$(arg dumpflags | tr ',' ' ')
    level=$(arg dumplevel)
    say "makedumpfile -F $flags -d ${level:-31}"
    makedumpfile -F $flags -d "${level:-31}" /proc/vmcore > /dev/vdb
    say "makedumpfile exit $?"
    makedumpfile --dump-dmesg /proc/vmcore /tmp/dmesg.txt >/dev/null 2>&1
    cat /tmp/dmesg.txt > /dev/vdc
    sync
    say "capture done"
    poweroff -f
}

live_in() {
    # A guest that looks like a small server: named, networked on loopback, with
    # sleepers, a busy process, open files, a pipe, a TCP connection, a tmpfs mount and
    # a few real modules loaded, so every analysis command has something to show.
    hostname kdx-lab
    ip link set lo up
    for m in qemu_fw_cfg dummy loop; do modprobe $m; done
    ip link add kdx0 type dummy 2>/dev/null && ip link set kdx0 up
    mount -t tmpfs -o size=16m scratch /mnt/scratch
    echo "lab notes" > /mnt/scratch/notes.txt
    for i in 1 2 3; do sleep 100000 & done
    /lab/bin/spinner > /dev/null &
    renice -n 19 -p $! > /dev/null
    /lab/bin/fileholder /mnt/scratch/notes.txt &
    sleep 100000 | cat > /dev/null &
    # Both ends keep a pipe on stdin: busybox nc quits when its stdin ends.
    sleep 100000 | nc -l -p 7070 > /dev/null &
    sleep 0.5
    sleep 100000 | nc 127.0.0.1 7070 > /dev/null &
    sleep 0.5
}

# Files a kdump doctor reads, saved before and after the capture kernel is loaded, so the
# capture-side tools can be tested on a real system's state.
STATE_FILES="/proc/cmdline /proc/iomem /proc/meminfo /proc/version /sys/kernel/kexec_crash_size
 /sys/kernel/kexec_crash_loaded /sys/kernel/kexec_loaded /sys/kernel/vmcoreinfo
 /proc/sys/kernel/sysrq /proc/sys/kernel/panic /proc/sys/kernel/panic_on_oops
 /proc/sys/kernel/panic_on_warn /proc/sys/kernel/hung_task_panic
 /proc/sys/kernel/softlockup_panic /proc/sys/kernel/unknown_nmi_panic
 /proc/sys/kernel/panic_on_rcu_stall /proc/sys/vm/panic_on_oom"

save_state() {
    for f in $STATE_FILES; do
        [ -r "$f" ] || continue
        mkdir -p "/tmp/kdx-state/$1$(dirname "$f")"
        cat "$f" > "/tmp/kdx-state/$1$f" 2>/dev/null
    done
}

write_state() {
    modprobe virtio_pci; modprobe virtio_blk
    wait_dev /dev/vda
    tar -cf /dev/vda -C /tmp/kdx-state . && sync
}

load_capture_kernel() {
    append="console=ttyS0 reset_devices irqpoll nr_cpus=1 panic=-1 kdx.dumpflags=$(arg dumpflags) kdx.dumplevel=$(arg dumplevel)"
    kexec -p /lab/capture/vmlinuz --initrd=/lab/capture/initrd.img --append="$append"
    say "kexec -p exit $? loaded=$(cat /sys/kernel/kexec_crash_loaded)"
}

if [ -e /proc/vmcore ]; then
    capture
fi
say "first kernel up"
live_in
save_state before-kexec
[ "$(arg capture)" = kdump ] && load_capture_kernel
save_state after-kexec
write_state
say "ready"
sh /lab/trigger.sh
sleep 3600
say "scenario did not crash the kernel"
poweroff -f

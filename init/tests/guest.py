#!/usr/bin/env python3
"""Boot lvsbox's init in QEMU (TCG) and check its duties end to end.

A throwaway check for the init crate, not the product harness (that is
`tests/`). It builds, under a scratch directory:
  - an initramfs (cpio newc) with the image's layout: /init, /bin/lbd,
    /bin/console, /etc/lvsbox-release, busybox + applets (debug flavour), and
    /lib/modules/<release>/ with the module closure of the few modules needed,
    modules.dep / modules.alias / modules.load generated from each .ko's
    .modinfo (plus a deliberately broken module),
  - config disks: GPT with a partition named lvsbox-config holding an ext4
    made by `mkfs.ext4 -d`, spliced in with dd (no loop mounts),
then boots one guest at a time with bounded timeouts, talks to the debug
shell on ttyS1 through a unix socket, and asserts on the serial log of ttyS0.

Usage: guest.py [--kernel VMLINUZ] [--modules DIR] [--bin DIR] [--work DIR] [scenario...]
Scenarios (default: all): valid powerdown reboot invalid missing panic-boot panic-loop
Exit status 0 only if every check passed. Prints "N passed, N failed".
"""

import argparse
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time

KVER = "6.1.0-56-amd64"
KDIR = "/tmp/k/x"
WANT = ["virtio_pci", "virtio_net", "virtio_blk", "ext4", "ip_vs", "ip_vs_rr", "ip_vs_wlc",
        "button", "evdev", "8021q",
        "crc32c_generic",  # softdep of libcrc32c/ext4/jbd2 (`softdep=pre: crc32c`)
        "dummy"]  # not in modules.load: the kernel asks for it on demand (request_module)
LOAD = ["# modules every lvsbox loads (test subset)", "ip_vs", "ip_vs_rr", "ip_vs_wlc", "8021q",
        "button", "evdev", "broken_test_module  # deliberately not a module: must be reported"]
MAC = "52:54:00:12:34:56"
APPLETS = ["sh", "ash", "cat", "echo", "ls", "ip", "kill", "pidof", "ps", "sleep", "grep", "mount",
           "sync", "hostname", "dmesg", "head", "tail", "wc", "tr", "sed", "test", "[", "true", "false",
           "ifconfig", "uname", "find", "stat", "readlink", "env", "dd", "od"]

RESULTS = {"passed": 0, "failed": 0}


def check(ok, what):
    RESULTS["passed" if ok else "failed"] += 1
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    return ok


# ---------------------------------------------------------------- modules

def modinfo(path):
    """The key=value strings of a .ko's ELF .modinfo section."""
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError(f"{path}: not an ELF64 file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = []
    for i in range(shnum):
        name, _typ, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        secs.append((name, off, size))
    _, stroff, _ = secs[shstrndx]
    out = {}
    for name, off, size in secs:
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".modinfo":
            for kv in data[off:off + size].split(b"\0"):
                if b"=" in kv:
                    k, v = kv.decode(errors="replace").split("=", 1)
                    out.setdefault(k, []).append(v)
    return out


def module_index(kdir):
    idx = {}
    for root, _, files in os.walk(kdir):
        for f in files:
            if f.endswith(".ko"):
                idx[f[:-3].replace("-", "_")] = os.path.join(root, f)
    return idx


def closure(idx, wanted):
    info, order = {}, []

    def visit(m, stack):
        if m in info:
            return
        if m in stack:
            raise RuntimeError("cycle " + " -> ".join(stack + [m]))
        mi = modinfo(idx[m])
        deps = [d.replace("-", "_") for d in ",".join(mi.get("depends", [""])).split(",") if d]
        for d in deps:
            visit(d, stack + [m])
        info[m] = (mi, deps)
        order.append(m)

    for w in wanted:
        visit(w, [])
    return info, order


def write_modules(mroot, kdir):
    idx = module_index(kdir)
    info, order = closure(idx, WANT)
    rel = {m: os.path.relpath(idx[m], os.path.dirname(kdir)) for m in order}  # kernel/...

    def all_deps(m, seen=None):
        seen = [] if seen is None else seen
        for d in info[m][1]:
            all_deps(d, seen)
            if d not in seen:
                seen.append(d)
        return seen

    dep_lines, alias_lines, soft_lines = [], [], []
    for m in order:
        dst = os.path.join(mroot, rel[m])
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(idx[m], dst)
        deps = list(reversed(all_deps(m)))  # deepest last, as depmod's reversed-load order
        dep_lines.append(f"{rel[m]}: " + " ".join(rel[d] for d in deps))
        for a in info[m][0].get("alias", []):
            alias_lines.append(f"alias {a} {m}")
        for sd in info[m][0].get("softdep", []):
            soft_lines.append(f"softdep {m} {sd}")
    broken = "kernel/extra/broken_test_module.ko"
    os.makedirs(os.path.join(mroot, "kernel/extra"), exist_ok=True)
    with open(os.path.join(mroot, broken), "wb") as f:
        f.write(b"this is not an ELF object\n" * 8)
    dep_lines.append(f"{broken}:")
    open(os.path.join(mroot, "modules.dep"), "w").write("\n".join(dep_lines) + "\n")
    open(os.path.join(mroot, "modules.alias"), "w").write("# generated by guest.py\n" + "\n".join(alias_lines) + "\n")
    open(os.path.join(mroot, "modules.load"), "w").write("\n".join(LOAD) + "\n")
    open(os.path.join(mroot, "modules.softdep"), "w").write("\n".join(soft_lines) + "\n")
    return order


# ---------------------------------------------------------------- images

def build_initramfs(work, bindir, kdir):
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp", "cfg", "var",
              f"lib/modules/{KVER}"]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(os.path.join(bindir, "init"), os.path.join(root, "init"))
    shutil.copy(os.path.join(bindir, "lbd"), os.path.join(root, "bin/lbd"))
    shutil.copy(os.path.join(bindir, "console"), os.path.join(root, "bin/console"))
    shutil.copy("/bin/busybox", os.path.join(root, "bin/busybox"))
    for a in APPLETS:
        os.symlink("busybox", os.path.join(root, "bin", a))
    open(os.path.join(root, "etc/lvsbox-release"), "w").write("NAME=lvsbox\nVERSION=test\nFLAVOUR=debug\n")
    order = write_modules(os.path.join(root, f"lib/modules/{KVER}"), kdir)
    out = os.path.join(work, "initramfs.cpio")
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True, check=True).stdout
    with open(out, "wb") as f:
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"], cwd=root, input=files.encode(),
                       stdout=f, check=True)
    return out, order


def build_disk(work, name, toml):
    """GPT disk with partition lvsbox-config (ext4 from a folder, no mounts)."""
    d = os.path.join(work, f"{name}-files")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if toml is not None:
        open(os.path.join(d, "lvsbox.toml"), "w").write(toml)
    img = os.path.join(work, f"{name}.img")
    part = os.path.join(work, f"{name}.part")
    start, sectors = 2048, 32768  # 16 MiB partition at 1 MiB
    with open(img, "wb") as f:
        f.truncate((start + sectors + 2048) * 512)
    subprocess.run(["sfdisk", "--quiet", img], check=True,
                   input=f"label: gpt\nstart={start}, size={sectors}, type=L, name=lvsbox-config\n".encode())
    if os.path.exists(part):
        os.remove(part)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "lvsbox-config", "-d", d, part, f"{sectors // 2}k"], check=True)
    subprocess.run(["dd", f"if={part}", f"of={img}", "bs=512", f"seek={start}", "conv=notrunc", "status=none"],
                   check=True)
    return img


VALID = f"""
[system]
hostname = "lb-test"
consoles = ["ttyS0", "tty1"]
ip_forward = true

[ipvs]
conn_tab_bits = 14
[ipvs.sysctl]
expire_nodest_conn = true
sloppy_tcp = true

[[interfaces]]
name = "lan0"
mac = "{MAC}"
mtu = 1400
addresses = ["10.0.2.15/24"]

[[interfaces]]
name = "lan0.100"
vlan = {{ parent = "lan0", id = 100 }}
addresses = ["192.0.2.1/24"]

[[routes]]
destination = "default"
gateway = "10.0.2.2"

[[routes]]
destination = "198.51.100.0/24"
interface = "lan0.100"
metric = 5

[[vips]]
address = "10.0.2.100"
interface = "lan0"
label = "lan0:vip"
"""

INVALID = """
[system]
hostname = "bad_host!"
consoles = ["ttyS0", "lpt1"]

[ipvs]
conn_tab_bits = 40

[[interfaces]]
name = "eth0"
mtu = 20
"""


# ---------------------------------------------------------------- guest

class Guest:
    def __init__(self, work, kernel, initrd, disk, append_extra="", name="guest"):
        self.work, self.name = work, name
        self.log = os.path.join(work, f"{name}.ttyS0.log")
        self.s1 = os.path.join(work, f"{name}.ttyS1.sock")
        self.mon = os.path.join(work, f"{name}.mon.sock")
        for p in (self.log, self.s1, self.mon):
            if os.path.exists(p):
                os.remove(p)
        append = f"console=ttyS0 quiet panic=10 lvsbox.shell=ttyS1 {append_extra}".strip()
        cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
               "-kernel", kernel, "-initrd", initrd, "-append", append,
               "-serial", f"file:{self.log}", "-serial", f"unix:{self.s1},server,nowait",
               "-monitor", f"unix:{self.mon},server,nowait",
               "-netdev", "user,id=n0,restrict=on",
               "-device", f"virtio-net-pci,netdev=n0,mac={MAC}"]
        if disk:
            cmd += ["-drive", f"file={disk},if=virtio,format=raw"]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(os.path.join(work, f"{name}.qemu.out"), "w"),
                                     stderr=subprocess.STDOUT)
        self.sock = None

    def text(self):
        try:
            return open(self.log, errors="replace").read()
        except FileNotFoundError:
            return ""

    def wait_line(self, pattern, timeout=60):
        """Waits for a regex in the ttyS0 log; returns (match, seconds since QEMU start) or (None, None)."""
        end = time.monotonic() + timeout
        rx = re.compile(pattern, re.M)
        while time.monotonic() < end:
            m = rx.search(self.text())
            if m:
                return m, time.monotonic() - self.t0
            if self.proc.poll() is not None:
                m = rx.search(self.text())
                return (m, time.monotonic() - self.t0) if m else (None, None)
            time.sleep(0.05)
        return None, None

    def shell(self, cmd, timeout=20):
        if self.sock is None:
            end = time.monotonic() + 10
            while True:
                try:
                    self.sock = socket.socket(socket.AF_UNIX)
                    self.sock.connect(self.s1)
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.1)
            self.sock.settimeout(0.2)
            self.seq = 0
        self.seq += 1
        begin, mark = f"__BEGIN{self.seq}__", f"__END{self.seq}__"
        # The tty echoes the command line; the quotes keep the echo from matching the markers.
        self.sock.sendall(f"echo __B''EGIN{self.seq}__; {cmd}; echo __E''ND{self.seq}__\n".encode())
        buf, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
            except socket.timeout:
                pass
            if buf.count(mark.encode()) >= 1 and buf.count(begin.encode()) >= 1:
                break
        out = buf.decode(errors="replace").replace("\r", "")
        if mark not in out or begin not in out:
            return None
        return out.split(begin, 1)[1].split(mark, 1)[0].strip()

    def monitor(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.mon)
        s.sendall((cmd + "\n").encode())
        time.sleep(0.3)
        s.close()

    def wait_exit(self, timeout=30):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        if self.sock:
            self.sock.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def grep(text, pattern):
    return [l for l in text.splitlines() if re.search(pattern, l)]


def show(g, pattern, label):
    for l in grep(g.text(), pattern):
        print(f"    [{label}] {l.strip()}")


# ---------------------------------------------------------------- scenarios

def scenario_valid(a, initrd, then="term"):
    disk = build_disk(a.work, "valid", VALID)
    g = Guest(a.work, a.kernel, initrd, disk, name=f"valid-{then}")
    try:
        m, t_banner = g.wait_line(r"^lvsbox \S+\s*$", 60)
        check(m is not None, f"banner line `{m.group(0).strip() if m else '?'}` on ttyS0 at {t_banner and round(t_banner, 2)} s")
        m, t_ready = g.wait_line(r"^lbd ready\s*$", 90)
        check(m is not None, f"`lbd ready` on ttyS0, {t_ready and round(t_ready, 2)} s after QEMU start")
        if t_ready:
            print(f"    TIMING: QEMU start -> lbd ready = {t_ready:.2f} s")
        txt = g.text()
        for pat, what in [
            (r"init: config partition /dev/vda1 mounted on /cfg", "config partition mounted"),
            (r"init: config /cfg/lvsbox.toml: OK", "config parsed OK"),
            (r"init: module broken_test_module: finit_module: .*\(errno 8\)", "broken module reported by name + errno"),
            (r"init: modules: \d+ loaded, 1 failed \(broken_test_module\)", "modules summary"),
            (r"init: hostname lb-test", "hostname"),
            (r"init: network: \d+ changes, all ok", "network applied without failures"),
            (r"init: lan0: up 10.0.2.15/24 10.0.2.100/32", "lan0 addresses (renamed from eth0 by MAC)"),
        ]:
            check(bool(grep(txt, pat)), f"serial: {what}")
        show(g, r"init: |^lvsbox |^lbd ready", "ttyS0")
        out = g.shell("hostname; cat /proc/sys/net/ipv4/ip_forward; cat /sys/module/ip_vs/parameters/conn_tab_bits; "
                      "cat /proc/sys/net/ipv4/vs/expire_nodest_conn /proc/sys/net/ipv4/vs/sloppy_tcp; "
                      "cat /proc/sys/kernel/ctrl-alt-del /proc/sys/kernel/modprobe; head -3 /proc/net/ip_vs")
        print("    [ttyS1] " + (out or "<no answer>").replace("\n", "\n    [ttyS1] "))
        lines = (out or "").splitlines()
        check(lines[:7] == ["lb-test", "1", "14", "1", "1", "0", "/init"], "hostname, ip_forward, conn_tab_bits, vs sysctls, ctrl-alt-del, modprobe")
        check(any("IP Virtual Server version" in l for l in lines), "/proc/net/ip_vs exists (ip_vs loaded)")
        out = g.shell("ip -o addr show; ip -o link show lan0; ip route show; ip -d -o link show lan0.100")
        print("    [ttyS1] " + (out or "<no answer>").replace("\n", "\n    [ttyS1] "))
        out = out or ""
        check(re.search(r"lan0\s+inet 10.0.2.15/24 .*proto 76|lan0\s+inet 10.0.2.15/24", out) is not None, "ip addr: 10.0.2.15/24 on lan0")
        check("10.0.2.100/32" in out and "lan0:vip" in out, "ip addr: VIP 10.0.2.100/32 label lan0:vip")
        check("mtu 1400" in out and MAC in out, "lan0: MAC matched, mtu 1400")
        check("192.0.2.1/24" in out, "lan0.100 has 192.0.2.1/24")
        check("default via 10.0.2.2 dev lan0" in out, "default route via 10.0.2.2")
        check("198.51.100.0/24 dev lan0.100 scope link  metric 5" in out, "route 198.51.100.0/24 dev lan0.100 metric 5")
        out = g.shell("cat /proc/net/vlan/config")
        check(out is not None and re.search(r"lan0\.100\s*\|\s*100\s*\|\s*lan0", out) is not None, f"802.1Q: lan0.100 is VLAN 100 on lan0 ({out!r})")
        # lbd::net's own view (what the console will list), via `init net`.
        out = g.shell("/init net")
        try:
            net = json.loads(out)
            links = {l["name"]: l for l in net["links"]}
            v = links.get("lan0.100", {})
            check(v.get("kind") == "vlan" and v.get("vlan_id") == 100 and v.get("parent") == "lan0", "init net: lan0.100 kind vlan id 100 parent lan0")
            owned = {(a["address"], a["owned"]) for a in links["lan0"]["addresses"]}
            check(("10.0.2.15/24", True) in owned and ("10.0.2.100/32", True) in owned, "init net: lan0 addresses owned by lvsbox (IFA_PROTO 76)")
            check(any(not a["owned"] for a in links["lan0"]["addresses"]), "init net: kernel's own addresses (link-local) not owned")
            rts = {r["destination"]: r for r in net["routes"]}
            check(rts.get("default", {}).get("owned") is True and rts["default"].get("gateway") == "10.0.2.2", "init net: default route owned (proto 76)")
            check(rts.get("10.0.2.0/24", {}).get("owned") is False, "init net: kernel's connected route not owned")
        except Exception as e:
            check(False, f"init net output parse: {e!r}: {out!r}")
        # Kernel-requested module (request_module "rtnl-link-dummy") through init's modprobe helper.
        out = g.shell("grep -c '^dummy ' /proc/modules; ip link add dtest type dummy && grep -c '^dummy ' /proc/modules; ip -o link show dtest")
        print("    [ttyS1] " + (out or "<no answer>").replace("\n", "\n    [ttyS1] "))
        check(out is not None and out.splitlines()[:2] == ["0", "1"] and "dtest" in out,
              "kernel request_module(rtnl-link-dummy) served by /init as modprobe helper")
        # init control socket through `init ctl`.
        out = g.shell("/init ctl children")
        print("    [ttyS1] /init ctl children -> " + (out or "<none>"))
        check(out is not None and '"name":"lbd"' in out and '"state":"running"' in out, "init socket: children lists lbd running")
        out = g.shell("/init ctl boot_report")
        check(out is not None and '"status":"ok"' in out and '"broken_test_module"' in out, "init socket: boot_report (config ok, module failure)")
        out = g.shell("/init ctl logs | head -c 300")
        check(out is not None and '"t_ms"' in out and '"level"' in out, "init socket: logs ring")
        out = g.shell("stat -c '%a' /run/init.sock")
        check(out == "600", f"init socket mode 0600 ({out})")
        # kill -9 lbd: restarted within 1 s, logged with the signal.
        old = g.shell("pidof lbd")
        t0 = time.monotonic()
        g.shell(f"kill -9 {old}")
        new = None
        while time.monotonic() - t0 < 5:
            new = g.shell("pidof lbd")
            if new and new != old:
                break
            time.sleep(0.05)
        dt = time.monotonic() - t0
        check(bool(new) and new != old, f"lbd restarted: pid {old} -> {new} within {dt:.2f} s (includes shell round trips)")
        m, _ = g.wait_line(r"init: lbd ended: signal 9 \(SIGKILL\); restart #1 in 250 ms", 5)
        check(m is not None, "restart logged with the signal: " + (m.group(0) if m else "?"))
        out = g.shell("/init ctl children")
        check(out is not None and '"restarts":1' in out and "SIGKILL" in out, "children: restarts=1, last_exit SIGKILL")
        out = g.shell("sh -c 'sleep 0.2 &' ; sleep 0.5; ps -o pid,stat,comm | grep -c ' Z ' || true")
        check((out or "").strip().splitlines()[-1:] == ["0"], f"no zombies after an orphan exits ({out!r})")

        if then == "term":
            g.shell("sync; echo; kill -TERM 1")
            patt = r"init: powering off \(SIGTERM"
        elif then == "powerdown":
            g.monitor("system_powerdown")
            patt = r"init: powering off \(ACPI power button\)"
        else:
            g.shell("kill -INT 1")
            patt = r"init: rebooting \(SIGINT"
        m, _ = g.wait_line(patt, 20)
        check(m is not None, f"shutdown started: {m.group(0) if m else patt}")
        exited = g.wait_exit(40)
        check(exited, "QEMU exited (guest halted)")
        txt = g.text()
        check(bool(grep(txt, r"init: lbd stopped: signal 15")), "lbd stopped with SIGTERM")
        check(bool(grep(txt, r"init: /cfg: unmounted")), "/cfg unmounted")
        final = r"reboot: Power down" if then != "reboot" else r"reboot: Restarting system"
        check(bool(grep(txt, final)), f"kernel: {final}")
        show(g, r"init: (powering|rebooting|.*stopped|/cfg|/tmp|/run|.* now)|reboot:", "ttyS0")
    finally:
        g.kill()


def scenario_invalid(a, initrd):
    disk = build_disk(a.work, "invalid", INVALID)
    g = Guest(a.work, a.kernel, initrd, disk, name="invalid")
    try:
        m, t = g.wait_line(r"^lbd ready\s*$", 90)
        check(m is not None, "invalid config: still boots to `lbd ready`")
        txt = g.text()
        show(g, r"CONFIG INVALID|lvsbox.toml:\d+", "ttyS0")
        check(bool(grep(txt, r"init: CONFIG INVALID: /cfg/lvsbox.toml has 4 error\(s\); booting with SAFE DEFAULTS")), "invalid config announced")
        for p in ["system.hostname", r"system.consoles\[1\]", "ipvs.conn_tab_bits", r"interfaces\[0\].mtu"]:
            check(bool(grep(txt, rf"init:   /cfg/lvsbox.toml:\d+:\d+: {p}: ")), f"error shown on the console tty: {p}")
        out = g.shell("hostname; /init ctl boot_report")
        check(out is not None and out.startswith("lvsbox") and '"status":"invalid"' in out and out.count('"message"') == 4,
              "defaults in force (hostname lvsbox); boot_report has status invalid and all 4 errors")
        shot = os.path.join(a.work, "invalid-tty1.ppm")
        g.monitor(f"screendump {shot}")
        check(os.path.exists(shot), f"tty1 screendump taken ({shot}; look at it for the error lines)")
        out = g.shell("/init ctl children")
        check(out is not None and '"console:ttyS0"' in out and '"console:tty1"' in out, "default consoles supervised (ttyS0, tty1)")
        g.shell("kill -TERM 1")
        check(g.wait_exit(40), "powered off")
    finally:
        g.kill()


def scenario_missing(a, initrd):
    g = Guest(a.work, a.kernel, initrd, None, append_extra="lvsbox.consoles=ttyS0", name="missing")
    try:
        m, t = g.wait_line(r"^lbd ready\s*$", 90)
        check(m is not None, f"no config disk: still boots to `lbd ready` ({t and round(t, 2)} s, includes the 5 s wait)")
        show(g, r"init: config", "ttyS0")
        check(bool(grep(g.text(), r"init: config: config partition PARTLABEL=lvsbox-config not found after 5\d\d\d ms; booting with safe defaults")),
              "missing partition: says why")
        out = g.shell("/init ctl boot_report")
        check(out is not None and '"status":"missing"' in out, "boot_report: status missing")
        out = g.shell("/init ctl children")
        check(out is not None and '"console:ttyS0"' in out and '"console:tty1"' not in out,
              "lvsbox.consoles=ttyS0 overrides the default consoles (no tty1)")
        g.shell("kill -TERM 1")
        check(g.wait_exit(40), "powered off")
    finally:
        g.kill()


def scenario_maintenance(a, initrd, where):
    disk = build_disk(a.work, "valid", VALID)
    g = Guest(a.work, a.kernel, initrd, disk, append_extra=f"lvsbox.debug=1 lvsbox.panic={where}", name=f"panic-{where}")
    try:
        m, _ = g.wait_line(r"MAINTENANCE MODE", 90)
        check(m is not None, f"panic in {where}: init survives and enters maintenance mode")
        show(g, r"init: (PANIC|.*MAINTENANCE)", "ttyS0")
        out = None
        end = time.monotonic() + 20
        while time.monotonic() < end:  # the shell is restarted after a loop panic
            out = g.shell("/init ctl children", timeout=5)
            if out and '"shell:ttyS1"' in out:
                break
            g.sock = None
            time.sleep(0.5)
        print("    [ttyS1] /init ctl children -> " + (out or "<none>"))
        check(out is not None and '"name":"lbd"' not in out and '"console:ttyS0"' in out and '"shell:ttyS1"' in out,
              "maintenance: consoles and shell supervised, lbd not")
        out = g.shell("/init ctl boot_report")
        check(out is not None and '"maintenance":' in out, "boot_report says maintenance and why")
        g.shell("kill -TERM 1")
        check(g.wait_exit(40), "power off still works in maintenance mode")
        check(bool(grep(g.text(), r"reboot: Power down")), "kernel: reboot: Power down")
    finally:
        g.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default=f"{KDIR}/boot/vmlinuz-{KVER}")
    ap.add_argument("--modules", default=f"{KDIR}/lib/modules/{KVER}/kernel")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/x86_64-unknown-linux-gnu/release"))
    ap.add_argument("--work", default="/tmp/lvsbox-init-guest")
    ap.add_argument("scenarios", nargs="*", default=["valid", "powerdown", "reboot", "invalid", "missing", "panic-boot", "panic-loop"])
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    initrd, order = build_initramfs(a.work, a.bin, a.modules)
    print(f"initramfs {initrd} ({os.path.getsize(initrd) // 1024} KiB), modules: {' '.join(order)}", flush=True)
    for s in a.scenarios:
        print(f"== {s}", flush=True)
        try:
            if s == "valid":
                scenario_valid(a, initrd, "term")
            elif s == "powerdown":
                scenario_valid(a, initrd, "powerdown")
            elif s == "reboot":
                scenario_valid(a, initrd, "reboot")
            elif s == "invalid":
                scenario_invalid(a, initrd)
            elif s == "missing":
                scenario_missing(a, initrd)
            elif s in ("panic-boot", "panic-loop"):
                scenario_maintenance(a, initrd, s.split("-")[1])
            else:
                check(False, f"unknown scenario {s}")
        except Exception as e:  # a crash in the harness is a failure, not a skip
            check(False, f"{s}: harness error: {e!r}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 0 if RESULTS["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

//! What crosses a lab's bridge: a capture of IPv4 multicast on `br0` in the
//! switch namespace (VRRP adverts to 224.0.0.18, IPVS sync messages to
//! 224.0.0.81:8848). Link-local multicast is flooded to the bridge device
//! itself, so every such frame is seen once, whichever port it came from.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::lab::Lab;

/// One IPv4 packet seen on the bridge.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// When the harness saw it.
    pub at: Instant,
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// IP protocol.
    pub proto: u8,
    /// Bytes after the IPv4 header (at most 64).
    pub payload: Vec<u8>,
}

impl Pkt {
    /// A VRRP advert: `(vrid, priority)`.
    pub fn vrrp(&self) -> Option<(u8, u8)> {
        (self.proto == 112 && self.payload.len() >= 3 && self.payload[0] & 0x0f == 1)
            .then(|| (self.payload[1], self.payload[2]))
    }
    /// UDP destination port.
    pub fn udp_dport(&self) -> Option<u16> {
        (self.proto == 17 && self.payload.len() >= 4).then(|| u16::from_be_bytes([self.payload[2], self.payload[3]]))
    }
    /// An IPVS sync message (UDP to `port`, default 8848).
    pub fn is_ipvs_sync(&self, port: u16) -> bool {
        self.udp_dport() == Some(port)
    }
}

/// A capture running on a lab's bridge until [`Capture::stop`].
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Result<Vec<Pkt>>>>>,
}

impl Capture {
    /// Starts capturing IPv4 multicast (224.0.0.0/24) seen by `br0`, for at
    /// most `max` (and 100,000 packets).
    pub fn start(lab: &Lab, max: Duration) -> Capture {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = lab.switch.spawn_thread(move || -> Result<Vec<Pkt>> {
            use nix::sys::socket::*;
            let br = nix::net::if_::if_nametoindex("br0").context("br0")? as usize;
            let fd = socket(AddressFamily::Packet, SockType::Raw, SockFlag::empty(), SockProtocol::EthAll)
                .context("AF_PACKET socket")?;
            setsockopt(&fd, sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(0, 50_000))?;
            let mut out = Vec::new();
            let mut buf = [0u8; 2048];
            let t0 = Instant::now();
            // Once stopped, what is already queued is still read (each frame
            // is queued once per port it crosses, the bridge's copy maybe
            // last): the capture ends when the socket is idle for 50 ms, or
            // 1 s after the stop at the latest.
            let mut stopped: Option<Instant> = None;
            while t0.elapsed() < max
                && out.len() < 100_000
                && stopped.is_none_or(|s| s.elapsed() < Duration::from_secs(1))
            {
                if stopped.is_none() && flag.load(Ordering::Relaxed) {
                    stopped = Some(Instant::now());
                }
                let Ok((n, Some(from))) = recvfrom::<LinkAddr>(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buf) else {
                    if stopped.is_some() {
                        break;
                    }
                    continue;
                };
                let at = Instant::now();
                if from.ifindex() != br || n < 34 || buf[12..14] != [0x08, 0x00] {
                    continue;
                }
                let ip = &buf[14..n];
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
                if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl || dst.octets()[..3] != [224, 0, 0] {
                    continue;
                }
                out.push(Pkt {
                    at,
                    src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
                    dst,
                    proto: ip[9],
                    payload: ip[ihl..].iter().take(64).copied().collect(),
                });
            }
            Ok(out)
        });
        Capture { stop, thread: Some(thread) }
    }

    /// Stops and returns what was seen.
    pub fn stop(mut self) -> Result<Vec<Pkt>> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().context("capture already stopped")?;
        t.join().map_err(|_| anyhow::anyhow!("capture thread panicked"))??
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// VRRP adverts with a non-zero priority from `src` for `vrid` in `pkts`.
pub fn adverts_from(pkts: &[Pkt], src: Ipv4Addr, vrid: u8) -> Vec<&Pkt> {
    pkts.iter().filter(|p| p.src == src && p.vrrp().is_some_and(|(v, prio)| v == vrid && prio > 0)).collect()
}

/// The longest time both `a` and `b` were advertising as master for `vrid`:
/// a speaker counts as master from its first advert to its last one of a
/// run (adverts at most `interval * 1.5` apart).
pub fn dual_master(pkts: &[Pkt], a: Ipv4Addr, b: Ipv4Addr, vrid: u8, interval: Duration) -> Duration {
    let spans = |src| {
        let times: Vec<Instant> = adverts_from(pkts, src, vrid).iter().map(|p| p.at).collect();
        let mut v: Vec<(Instant, Instant)> = Vec::new();
        for t in times {
            match v.last_mut() {
                Some(last) if t.duration_since(last.1) <= interval.mul_f64(1.5) => last.1 = t,
                _ => v.push((t, t)),
            }
        }
        v
    };
    let (sa, sb) = (spans(a), spans(b));
    let mut worst = Duration::ZERO;
    for &(a0, a1) in &sa {
        for &(b0, b1) in &sb {
            let (s, e) = (a0.max(b0), a1.min(b1));
            if e > s {
                worst = worst.max(e - s);
            }
        }
    }
    worst
}

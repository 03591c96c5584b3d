//! The VRRP state machine, pure: events and the current time in, actions
//! out. No sockets, no clocks, no tasks, so every RFC rule is a table test
//! (`lbd/tests/vrrp_conformance/*.json`).
//!
//! States and transitions follow RFC 5798 §6.4 (RFC 3768 §6.4 for v2):
//! Init → Backup (wait Master_Down_Interval) → Master, or Init → Master for
//! the address owner (priority 255). Fault is entered when the instance's
//! interface or a weight-0 tracked interface is down, or when a member of its
//! sync group is in Fault. Choices beyond the RFC, each as keepalived does it
//! unless said otherwise:
//! - a master answers a lower-priority advert at once with its own advert
//!   and a GARP burst (heals a split brain, including the neighbours' ARP
//!   caches: keepalived issue #166);
//! - a master leaving for Fault or maintenance, or stopping, sends a
//!   priority-0 advert so the backup takes over after Skew_Time;
//! - `preempt_delay`: a preempting backup that sees a lower-priority master
//!   keeps accepting it for `preempt_delay`, then takes over at once;
//! - track weights: a positive weight is added while the interface is up, a
//!   negative one while it is down, 0 means Fault while down; the result is
//!   clamped to 1..=254 (the owner's 255 never changes);
//! - maintenance: a master hands over (priority 0) and the instance stays
//!   Backup, never taking over, until resumed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::packet::Version;

/// Monotonic time since an arbitrary origin.
pub type Time = Duration;

/// Instance state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not started yet.
    Init,
    /// Listening to a master (or waiting for one).
    Backup,
    /// Owns the VIPs and advertises.
    Master,
    /// Cannot serve (interface down, tracked interface down, sync group).
    Fault,
    /// Shut down.
    Stopped,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Init => "init",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
            State::Stopped => "stopped",
        })
    }
}

/// The timers an instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// Backup: the master is presumed dead when it fires.
    MasterDown,
    /// Master: send the next advertisement.
    Advert,
    /// Backup: preempt_delay elapsed while a lower-priority master was seen.
    Preempt,
    /// Master: next GARP/NA round.
    Garp,
}

impl Timer {
    const ALL: [Timer; 4] = [Timer::MasterDown, Timer::Advert, Timer::Preempt, Timer::Garp];
    fn idx(self) -> usize {
        self as usize
    }
    fn name(self) -> &'static str {
        match self {
            Timer::MasterDown => "master_down",
            Timer::Advert => "advert",
            Timer::Preempt => "preempt",
            Timer::Garp => "garp",
        }
    }
    /// Parses [`Timer::name`].
    pub fn parse(s: &str) -> Option<Timer> {
        Timer::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// Which IPVS sync daemon should run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncRole {
    /// Send connection updates.
    Master,
    /// Receive them.
    Backup,
}

/// Something the FSM is told.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Begin (after the initial link states were given).
    Startup,
    /// A valid advertisement for our VRID (already checked by the codec).
    Advert {
        /// Sender's primary address.
        src: IpAddr,
        /// Its priority.
        priority: u8,
        /// Its advertisement interval, centiseconds.
        interval_cs: u16,
    },
    /// A timer armed earlier reached its deadline.
    Timer(Timer),
    /// Link state of the instance's interface or a tracked one.
    Link {
        /// Interface name.
        ifname: String,
        /// Operationally up (and usable).
        up: bool,
    },
    /// lbd stops: hand over.
    Shutdown,
    /// Operator: go backup for maintenance (`true`) or resume.
    Maintenance(bool),
    /// Sync group: another member became master or left master for backup.
    Group(State),
    /// Sync group: some other member is (or no longer is) in Fault.
    GroupFault(bool),
}

/// Something the FSM wants done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority.
    SendAdvert {
        /// 0 when handing over.
        priority: u8,
    },
    /// Add the VIPs to their interfaces.
    AddVips,
    /// Remove the VIPs.
    RemoveVips,
    /// One round of gratuitous ARP / unsolicited NA for every VIP.
    Garp,
    /// (Re)arm a timer for an absolute time.
    Arm {
        /// Which.
        timer: Timer,
        /// When.
        at: Time,
    },
    /// Cancel a timer.
    Cancel(Timer),
    /// Switch the IPVS connection-sync daemon.
    SyncDaemon(SyncRole),
    /// State changed.
    StateChange {
        /// Before.
        from: State,
        /// After.
        to: State,
        /// Why, in words.
        reason: &'static str,
    },
}

fn fmt_time(t: Time) -> String {
    let ns = t.as_nanos();
    let (ms, frac) = (ns / 1_000_000, ns % 1_000_000);
    if frac == 0 { format!("{ms}ms") } else { format!("{ms}.{}ms", format!("{frac:06}").trim_end_matches('0')) }
}

/// Compact text form (logs and the conformance files).
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::SendAdvert { priority } => write!(f, "send_advert {priority}"),
            Action::AddVips => f.write_str("add_vips"),
            Action::RemoveVips => f.write_str("remove_vips"),
            Action::Garp => f.write_str("garp"),
            Action::Arm { timer, at } => write!(f, "arm {} {}", timer.name(), fmt_time(*at)),
            Action::Cancel(t) => write!(f, "cancel {}", t.name()),
            Action::SyncDaemon(SyncRole::Master) => f.write_str("sync_daemon master"),
            Action::SyncDaemon(SyncRole::Backup) => f.write_str("sync_daemon backup"),
            Action::StateChange { from, to, reason } => write!(f, "state {from} -> {to} ({reason})"),
        }
    }
}

/// GARP / unsolicited NA pacing after becoming master (keepalived's
/// `garp_master_*` with its defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarpParams {
    /// Rounds per burst (`garp_master_repeat`, 5).
    pub repeat: u8,
    /// Between rounds of a burst (`vrrp_garp_interval`; we default to 10 ms
    /// so a switch does not see 5 identical frames in the same microsecond).
    pub interval: Duration,
    /// Second burst this long after becoming master (`garp_master_delay`,
    /// 5 s; zero = none).
    pub delay: Duration,
    /// Periodic refresh while master (`garp_master_refresh`; zero = off).
    pub refresh: Duration,
    /// Rounds per refresh (`garp_master_refresh_repeat`, 1).
    pub refresh_repeat: u8,
    /// Rounds sent when a lower-priority advert shows a second master
    /// (`garp_lower_prio_repeat`).
    pub lower_prio_repeat: u8,
}

impl Default for GarpParams {
    fn default() -> Self {
        GarpParams {
            repeat: 5,
            interval: Duration::from_millis(10),
            delay: Duration::from_secs(5),
            refresh: Duration::ZERO,
            refresh_repeat: 1,
            lower_prio_repeat: 5,
        }
    }
}

/// A tracked interface.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// Interface name.
    pub ifname: String,
    /// 0: Fault while down; > 0: added while up; < 0: added while down.
    pub weight: i16,
}

/// What an instance is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Instance name.
    pub name: String,
    /// The interface it runs on.
    pub interface: String,
    /// Protocol version.
    pub version: Version,
    /// VRID.
    pub vrid: u8,
    /// Configured priority 1..=255.
    pub priority: u8,
    /// Advertisement interval.
    pub interval: Duration,
    /// Preempt a lower-priority master.
    pub preempt: bool,
    /// Wait this long before preempting.
    pub preempt_delay: Duration,
    /// Our primary address (the advert source: equal-priority tie-break).
    pub primary: IpAddr,
    /// GARP pacing.
    pub garp: GarpParams,
    /// Tracked interfaces.
    pub track: Vec<Track>,
    /// This instance drives the IPVS sync daemon.
    pub sync_daemon: bool,
    /// Adverts missed before the master is declared down (RFC: 3).
    pub down_adverts: u32,
}

/// One state change, for the history ring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// When (FSM time).
    #[serde(serialize_with = "ser_ms")]
    pub at: Time,
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Why.
    pub reason: &'static str,
}

fn ser_ms<S: serde::Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(t.as_millis() as u64)
}

/// How many transitions an instance remembers.
pub const HISTORY: usize = 32;

/// The current master as seen from a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct MasterInfo {
    /// Its address.
    pub ip: IpAddr,
    /// Its advertised priority.
    pub priority: u8,
    /// First advert from it (FSM time, ms).
    #[serde(serialize_with = "ser_ms")]
    pub since: Time,
}

/// One VRRP instance.
pub struct Instance {
    p: Params,
    state: State,
    /// Learned from the master's adverts (v3); our own interval otherwise.
    master_adver_interval: Duration,
    master: Option<MasterInfo>,
    master_since: Option<Time>,
    timers: [Option<Time>; 4],
    links: BTreeMap<String, bool>,
    group_fault: bool,
    maintenance: bool,
    garp_left: u8,
    garp_second: bool,
    history: heapless::HistoryBuf<Transition, HISTORY>,
}

impl Instance {
    /// A new instance in Init; every interface is assumed up until told.
    pub fn new(p: Params) -> Self {
        let mai = p.interval;
        Instance {
            p,
            state: State::Init,
            master_adver_interval: mai,
            master: None,
            master_since: None,
            timers: [None; 4],
            links: BTreeMap::new(),
            group_fault: false,
            maintenance: false,
            garp_left: 0,
            garp_second: false,
            history: heapless::HistoryBuf::new(),
        }
    }

    /// Its parameters.
    pub fn params(&self) -> &Params {
        &self.p
    }
    /// Updates the primary address (found at run time; tie-break only).
    pub fn set_primary(&mut self, ip: IpAddr) {
        self.p.primary = ip;
    }
    /// Whether this instance drives the IPVS sync daemon.
    pub fn set_sync_daemon(&mut self, on: bool) {
        self.p.sync_daemon = on;
    }
    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }
    /// The master as last seen (backup), or `None`.
    pub fn master(&self) -> Option<MasterInfo> {
        self.master
    }
    /// Since when we are master.
    pub fn master_since(&self) -> Option<Time> {
        self.master_since
    }
    /// Master_Adver_Interval.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }
    /// In maintenance.
    pub fn maintenance(&self) -> bool {
        self.maintenance
    }
    /// State changes, oldest first.
    pub fn history(&self) -> Vec<Transition> {
        self.history.oldest_ordered().cloned().collect()
    }
    /// The earliest armed timer.
    pub fn next_deadline(&self) -> Option<(Timer, Time)> {
        Timer::ALL.into_iter().filter_map(|t| self.timers[t.idx()].map(|at| (t, at))).min_by_key(|&(_, at)| at)
    }
    /// Is a link we care about known down?
    fn link_up(&self, ifname: &str) -> bool {
        self.links.get(ifname).copied().unwrap_or(true)
    }

    /// Priority after tracking (what we advertise).
    pub fn effective_priority(&self) -> u8 {
        if self.p.priority == 255 {
            return 255;
        }
        let mut prio = i32::from(self.p.priority);
        for t in &self.p.track {
            let up = self.link_up(&t.ifname);
            if (t.weight > 0 && up) || (t.weight < 0 && !up) {
                prio += i32::from(t.weight);
            }
        }
        prio.clamp(1, 254) as u8
    }

    /// In Fault for a reason of its own (not its sync group's).
    pub fn own_fault(&self) -> bool {
        !self.link_up(&self.p.interface) || self.p.track.iter().any(|t| t.weight == 0 && !self.link_up(&t.ifname))
    }

    fn faulty(&self) -> bool {
        self.own_fault() || self.group_fault
    }

    /// Skew_Time for a priority.
    pub fn skew(&self, prio: u8) -> Duration {
        let n = 256 - u32::from(prio);
        match self.p.version {
            Version::V3 => self.master_adver_interval * n / 256,
            Version::V2 => Duration::from_nanos(u64::from(n) * 1_000_000_000 / 256),
        }
    }

    /// Master_Down_Interval.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * self.p.down_adverts + self.skew(self.effective_priority())
    }

    fn arm(&mut self, out: &mut Vec<Action>, timer: Timer, at: Time) {
        self.timers[timer.idx()] = Some(at);
        out.push(Action::Arm { timer, at });
    }

    fn cancel(&mut self, out: &mut Vec<Action>, timer: Timer) {
        if self.timers[timer.idx()].take().is_some() {
            out.push(Action::Cancel(timer));
        }
    }

    fn set_state(&mut self, out: &mut Vec<Action>, now: Time, to: State, reason: &'static str) {
        let from = self.state;
        self.state = to;
        self.history.write(Transition { at: now, from, to, reason });
        out.push(Action::StateChange { from, to, reason });
    }

    fn sync(&self, out: &mut Vec<Action>, role: SyncRole) {
        if self.p.sync_daemon {
            out.push(Action::SyncDaemon(role));
        }
    }

    fn garp_start(&mut self, out: &mut Vec<Action>, now: Time, rounds: u8, second: bool) {
        if rounds == 0 {
            return;
        }
        out.push(Action::Garp);
        self.garp_left = rounds - 1;
        self.garp_second = second;
        self.garp_schedule(out, now);
    }

    fn garp_schedule(&mut self, out: &mut Vec<Action>, now: Time) {
        let g = self.p.garp.clone();
        if self.garp_left > 0 {
            self.arm(out, Timer::Garp, now + g.interval);
        } else if self.garp_second && !g.delay.is_zero() && g.repeat > 0 {
            self.garp_second = false;
            self.garp_left = g.repeat;
            self.arm(out, Timer::Garp, now + g.delay);
        } else if !g.refresh.is_zero() && g.refresh_repeat > 0 {
            self.garp_left = g.refresh_repeat;
            self.arm(out, Timer::Garp, now + g.refresh);
        } else {
            self.cancel(out, Timer::Garp);
        }
    }

    fn become_master(&mut self, out: &mut Vec<Action>, now: Time, reason: &'static str) {
        self.cancel(out, Timer::MasterDown);
        self.cancel(out, Timer::Preempt);
        self.set_state(out, now, State::Master, reason);
        self.master = None;
        self.master_since = Some(now);
        self.master_adver_interval = self.p.interval;
        out.push(Action::SendAdvert { priority: self.effective_priority() });
        out.push(Action::AddVips);
        let r = self.p.garp.repeat;
        self.garp_start(out, now, r, true);
        self.arm(out, Timer::Advert, now + self.p.interval);
        self.sync(out, SyncRole::Master);
    }

    /// Leaves Master (to Backup, Fault or Stopped): stop advertising, drop
    /// the VIPs, optionally hand over with a priority-0 advert.
    fn leave_master(&mut self, out: &mut Vec<Action>, handover: bool) {
        self.cancel(out, Timer::Advert);
        self.cancel(out, Timer::Garp);
        if handover {
            out.push(Action::SendAdvert { priority: 0 });
        }
        out.push(Action::RemoveVips);
        self.master_since = None;
        self.sync(out, SyncRole::Backup);
    }

    fn become_backup(&mut self, out: &mut Vec<Action>, now: Time, reason: &'static str) {
        self.set_state(out, now, State::Backup, reason);
        let at = now + self.master_down_interval();
        self.arm(out, Timer::MasterDown, at);
    }

    fn enter_fault(&mut self, out: &mut Vec<Action>, now: Time, reason: &'static str) {
        match self.state {
            State::Master => {
                // Hand over only if our own interface can still carry it.
                let can_send = self.link_up(&self.p.interface);
                self.leave_master(out, can_send);
            }
            State::Backup => {
                self.cancel(out, Timer::MasterDown);
                self.cancel(out, Timer::Preempt);
            }
            _ => {}
        }
        self.master = None;
        self.set_state(out, now, State::Fault, reason);
    }

    /// From Init or Fault: the owner takes over at once, others wait.
    fn start(&mut self, out: &mut Vec<Action>, now: Time, reason: &'static str) {
        self.master_adver_interval = self.p.interval;
        if self.p.priority == 255 && !self.maintenance {
            self.become_master(out, now, reason);
        } else {
            if self.state == State::Init {
                // Stale VIPs from a previous run (lbd was killed) must go.
                out.push(Action::RemoveVips);
                self.sync(out, SyncRole::Backup);
            }
            self.become_backup(out, now, reason);
        }
    }

    /// Handles one event at `now`; returns the actions in order.
    pub fn handle(&mut self, now: Time, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match ev {
            Event::Startup => {
                if self.state == State::Init {
                    if self.faulty() {
                        out.push(Action::RemoveVips);
                        self.sync(&mut out, SyncRole::Backup);
                        self.set_state(&mut out, now, State::Fault, "interface down at startup");
                    } else {
                        self.start(&mut out, now, "startup");
                    }
                }
            }
            Event::Link { ifname, up } => {
                let before = self.effective_priority();
                let old = self.links.insert(ifname, up);
                if old == Some(up) {
                    return out;
                }
                match self.state {
                    State::Master | State::Backup if self.faulty() => {
                        self.enter_fault(&mut out, now, "interface down");
                    }
                    State::Fault if !self.faulty() => self.start(&mut out, now, "interfaces up"),
                    State::Master if self.effective_priority() != before => {
                        // Tell the backup our new priority at once.
                        out.push(Action::SendAdvert { priority: self.effective_priority() });
                        let at = now + self.p.interval;
                        self.arm(&mut out, Timer::Advert, at);
                    }
                    _ => {}
                }
            }
            Event::Timer(t) => {
                match self.timers[t.idx()] {
                    Some(at) if at <= now => self.timers[t.idx()] = None,
                    _ => return out, // stale or early
                }
                self.on_timer(&mut out, now, t);
            }
            Event::Advert { src, priority, interval_cs } => self.on_advert(&mut out, now, src, priority, interval_cs),
            Event::Shutdown => {
                match self.state {
                    State::Master => self.leave_master(&mut out, true),
                    State::Stopped => return out,
                    _ => out.push(Action::RemoveVips),
                }
                for t in Timer::ALL {
                    self.cancel(&mut out, t);
                }
                self.set_state(&mut out, now, State::Stopped, "shutdown");
            }
            Event::Maintenance(on) => {
                if on == self.maintenance {
                    return out;
                }
                self.maintenance = on;
                match (on, self.state) {
                    (true, State::Master) => {
                        self.leave_master(&mut out, true);
                        self.become_backup(&mut out, now, "maintenance");
                    }
                    (false, State::Backup) if self.timers[Timer::MasterDown.idx()].is_none() => {
                        let at = now + self.master_down_interval();
                        self.arm(&mut out, Timer::MasterDown, at);
                    }
                    (false, State::Backup) if self.p.priority == 255 => {
                        self.become_master(&mut out, now, "maintenance over (owner)");
                    }
                    _ => {}
                }
            }
            Event::Group(to) => self.on_group(&mut out, now, to),
            Event::GroupFault(on) => {
                self.group_fault = on;
                match self.state {
                    State::Master | State::Backup if on => {
                        self.enter_fault(&mut out, now, "sync group member in fault")
                    }
                    State::Fault if !self.faulty() => self.start(&mut out, now, "sync group recovered"),
                    _ => {}
                }
            }
        }
        out
    }

    fn on_timer(&mut self, out: &mut Vec<Action>, now: Time, t: Timer) {
        match (t, self.state) {
            (Timer::MasterDown, State::Backup) => {
                if self.maintenance {
                    self.master = None;
                } else {
                    self.become_master(out, now, "master down timer expired");
                }
            }
            (Timer::Preempt, State::Backup) if !self.maintenance => {
                self.become_master(out, now, "preempt delay elapsed");
            }
            (Timer::Advert, State::Master) => {
                out.push(Action::SendAdvert { priority: self.effective_priority() });
                self.arm(out, Timer::Advert, now + self.p.interval);
            }
            (Timer::Garp, State::Master) => {
                out.push(Action::Garp);
                self.garp_left = self.garp_left.saturating_sub(1);
                self.garp_schedule(out, now);
            }
            _ => {}
        }
    }

    fn on_advert(&mut self, out: &mut Vec<Action>, now: Time, src: IpAddr, prio: u8, interval_cs: u16) {
        let ours = self.effective_priority();
        let their_interval = Duration::from_millis(u64::from(interval_cs) * 10);
        match self.state {
            State::Backup => {
                if prio == 0 {
                    // The master stops: take over after Skew_Time.
                    self.master = None;
                    let at = now + self.skew(ours);
                    self.arm(out, Timer::MasterDown, at);
                    return;
                }
                let lower = prio < ours;
                if lower && self.p.preempt && !self.maintenance {
                    if self.p.preempt_delay.is_zero() {
                        return; // discard: Master_Down will fire (RFC 5798 §6.4.2)
                    }
                    if self.timers[Timer::Preempt.idx()].is_none() {
                        let at = now + self.p.preempt_delay;
                        self.arm(out, Timer::Preempt, at);
                    }
                } else {
                    self.cancel(out, Timer::Preempt);
                }
                if self.p.version == Version::V3 {
                    self.master_adver_interval = their_interval;
                }
                if self.master.is_none_or(|m| m.ip != src) {
                    self.master = Some(MasterInfo { ip: src, priority: prio, since: now });
                } else if let Some(m) = &mut self.master {
                    m.priority = prio;
                }
                let at = now + self.master_down_interval();
                self.arm(out, Timer::MasterDown, at);
            }
            State::Master => {
                if prio == 0 {
                    out.push(Action::SendAdvert { priority: ours });
                    self.arm(out, Timer::Advert, now + self.p.interval);
                } else if prio > ours || (prio == ours && src > self.p.primary) {
                    self.leave_master(out, false);
                    if self.p.version == Version::V3 {
                        self.master_adver_interval = their_interval;
                    }
                    self.master = Some(MasterInfo { ip: src, priority: prio, since: now });
                    self.set_state(out, now, State::Backup, "higher priority advert");
                    let at = now + self.master_down_interval();
                    self.arm(out, Timer::MasterDown, at);
                } else {
                    // A second master with lower priority: assert ourselves now
                    // and re-point the neighbours' ARP caches.
                    out.push(Action::SendAdvert { priority: ours });
                    let r = self.p.garp.lower_prio_repeat;
                    self.garp_start(out, now, r, false);
                }
            }
            _ => {}
        }
    }

    fn on_group(&mut self, out: &mut Vec<Action>, now: Time, to: State) {
        match (to, self.state) {
            (State::Backup, State::Master) => {
                self.leave_master(out, false);
                self.become_backup(out, now, "sync group member became backup");
            }
            (State::Master, State::Backup) if !self.maintenance => {
                self.become_master(out, now, "sync group member became master");
            }
            _ => {}
        }
    }
}

/// All instances of a box and their sync groups: routes events and moves
/// groups together.
pub struct Machine {
    /// The instances.
    pub instances: Vec<Instance>,
    group_of: Vec<Option<usize>>,
    groups: Vec<Vec<usize>>,
}

impl Machine {
    /// Instances and groups (by instance index).
    pub fn new(instances: Vec<Instance>, groups: Vec<Vec<usize>>) -> Self {
        let mut group_of = vec![None; instances.len()];
        for (g, members) in groups.iter().enumerate() {
            for &m in members {
                if let Some(slot) = group_of.get_mut(m) {
                    *slot = Some(g);
                }
            }
        }
        Machine { instances, group_of, groups }
    }

    /// Index of an instance by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.instances.iter().position(|i| i.p.name == name)
    }

    /// Members of instance `i`'s group (including `i`), or just `i`.
    pub fn group_members(&self, i: usize) -> Vec<usize> {
        match self.group_of.get(i).copied().flatten() {
            Some(g) => self.groups[g].clone(),
            None => vec![i],
        }
    }

    /// Handles an event for instance `i`; sync-group members follow.
    /// Returns `(instance index, action)` in order.
    pub fn handle(&mut self, now: Time, i: usize, ev: Event) -> Vec<(usize, Action)> {
        let mut out = Vec::new();
        let mut work = std::collections::VecDeque::from([(i, ev)]);
        let mut budget = 4 * self.instances.len() + 4;
        while let Some((i, ev)) = work.pop_front() {
            if budget == 0 {
                break;
            }
            budget -= 1;
            let Some(inst) = self.instances.get_mut(i) else { continue };
            for a in inst.handle(now, ev) {
                // Mastership moves the group; Fault is synced below.
                if let Action::StateChange { from, to, .. } = a
                    && (to == State::Master || (from == State::Master && to == State::Backup))
                    && let Some(g) = self.group_of[i]
                {
                    for &j in &self.groups[g] {
                        if j != i && self.instances[j].state != to {
                            work.push_back((j, Event::Group(to)));
                        }
                    }
                }
                out.push((i, a));
            }
            if let Some(g) = self.group_of[i] {
                let members = &self.groups[g];
                for &j in members {
                    let want = members.iter().any(|&k| k != j && self.instances[k].own_fault());
                    let inst = &self.instances[j];
                    if want != inst.group_fault && inst.state != State::Init && inst.state != State::Stopped {
                        work.push_back((j, Event::GroupFault(want)));
                    }
                }
            }
        }
        out
    }
}

//! Forms: fields that validate as you type with the config model's own
//! parsers, and the edits they make to a [`Config`].

use std::net::IpAddr;
use std::str::FromStr;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lbd::config::{
    Config, Endpoint, Forwarding, IfAddr, Interface, MacAddr, Persistence, Prefix, Protocol, Real, Route, Scheduler,
    Service, Vip, Vlan,
};

/// How a field takes input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// Free text.
    Text,
    /// Shown as `*`.
    Secret,
    /// One of these; Left/Right/Space cycle, typing works too.
    Choice(&'static [&'static str]),
}

/// A field-level check: `Err(reason)` is shown under the field as you type.
pub type Check = fn(&str) -> Result<(), String>;

/// One input field.
#[derive(Clone, Debug)]
pub struct Field {
    /// Label.
    pub label: &'static str,
    /// Current text.
    pub value: String,
    /// Kind.
    pub kind: FieldKind,
    /// Validation.
    pub check: Check,
    /// What to type (shown when the field has focus).
    pub hint: &'static str,
}

impl Field {
    fn new(label: &'static str, value: impl Into<String>, check: Check, hint: &'static str) -> Self {
        Field { label, value: value.into(), kind: FieldKind::Text, check, hint }
    }
    fn choice(label: &'static str, value: impl Into<String>, opts: &'static [&'static str], check: Check) -> Self {
        Field { label, value: value.into(), kind: FieldKind::Choice(opts), check, hint: "Left/Right to choose" }
    }
    fn secret(label: &'static str) -> Self {
        Field { label, value: String::new(), kind: FieldKind::Secret, check: any, hint: "" }
    }
    /// The field's error, if any.
    pub fn error(&self) -> Option<String> {
        (self.check)(self.value.trim()).err()
    }
}

/// Which form, and what it edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormKind {
    /// New service.
    AddService,
    /// Service `i`.
    EditService(usize),
    /// New real of service `i`.
    AddReal(usize),
    /// Real `j` of service `i`.
    EditReal(usize, usize),
    /// New interface.
    AddInterface,
    /// Interface `i`.
    EditInterface(usize),
    /// New route.
    AddRoute,
    /// Route `i`.
    EditRoute(usize),
    /// New static VIP.
    AddVip,
    /// VIP `i`.
    EditVip(usize),
    /// Host name and other system settings.
    System,
    /// New console password (typed twice).
    Password,
    /// Factory reset: type RESET.
    FactoryReset,
}

/// What a key did to a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormAction {
    /// Nothing to do outside.
    None,
    /// Enter: try to submit.
    Submit,
    /// Esc.
    Cancel,
}

/// A form on screen.
#[derive(Clone, Debug)]
pub struct Form {
    /// What it edits.
    pub kind: FormKind,
    /// Title.
    pub title: String,
    /// Fields.
    pub fields: Vec<Field>,
    /// Focused field.
    pub focus: usize,
    /// Errors of the whole resulting config (lbd's text), or of submitting.
    pub errors: Vec<String>,
}

fn any(_: &str) -> Result<(), String> {
    Ok(())
}

fn opt<T: FromStr>(s: &str) -> Result<Option<T>, T::Err> {
    if s.trim().is_empty() { Ok(None) } else { s.trim().parse().map(Some) }
}

fn num_check<T: FromStr>(s: &str, what: &str) -> Result<(), String> {
    opt::<T>(s).map(|_| ()).map_err(|_| format!("`{s}` is not {what}"))
}

fn check_name(s: &str) -> Result<(), String> {
    if s.chars().any(|c| c.is_control() || c == '"') {
        return Err("no quotes or control characters".into());
    }
    Ok(())
}
fn check_endpoint_opt(s: &str) -> Result<(), String> {
    opt::<Endpoint>(s).map(|_| ())
}
fn check_endpoint(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("required".into());
    }
    s.parse::<Endpoint>().map(|_| ())
}
fn check_u32(s: &str) -> Result<(), String> {
    num_check::<u32>(s, "a whole number")
}
fn check_u16(s: &str) -> Result<(), String> {
    num_check::<u16>(s, "a number 0..65535")
}
fn check_weight(s: &str) -> Result<(), String> {
    match opt::<u32>(s) {
        Ok(Some(w)) if w > 65535 => Err("weight is 0..65535".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("`{s}` is not a weight (0..65535)")),
    }
}
fn check_protocol(s: &str) -> Result<(), String> {
    s.parse::<Protocol>().map(|_| ())
}
fn check_scheduler(s: &str) -> Result<(), String> {
    s.parse::<Scheduler>().map(|_| ())
}
fn check_forwarding(s: &str) -> Result<(), String> {
    s.parse::<Forwarding>().map(|_| ())
}
fn check_forwarding_opt(s: &str) -> Result<(), String> {
    if s == "default" { Ok(()) } else { opt::<Forwarding>(s).map(|_| ()) }
}
fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("required".into());
    }
    if s.len() > 15 || s.contains(['/', ' ', ':']) {
        return Err("an interface name: at most 15 characters, no '/', ':' or spaces".into());
    }
    Ok(())
}
fn check_ifname_opt(s: &str) -> Result<(), String> {
    if s.is_empty() { Ok(()) } else { check_ifname(s) }
}
fn check_mac(s: &str) -> Result<(), String> {
    opt::<MacAddr>(s).map(|_| ())
}
fn check_ifaddrs(s: &str) -> Result<(), String> {
    split_list(s).iter().try_for_each(|a| a.parse::<IfAddr>().map(|_| ()))
}
fn check_ifaddr(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("required".into());
    }
    s.parse::<IfAddr>().map(|_| ())
}
fn check_prefix(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("required (e.g. default or 10.0.0.0/8)".into());
    }
    s.parse::<Prefix>().map(|_| ())
}
fn check_ip_opt(s: &str) -> Result<(), String> {
    opt::<IpAddr>(s).map(|_| ()).map_err(|_| format!("`{s}` is not an IP address"))
}
fn check_hostname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("letters, digits and '-', at most 63".into());
    }
    Ok(())
}
fn check_reset(s: &str) -> Result<(), String> {
    if s == "RESET" { Ok(()) } else { Err("type RESET (capitals) to confirm".into()) }
}

fn split_list(s: &str) -> Vec<&str> {
    s.split([',', ' ']).map(str::trim).filter(|x| !x.is_empty()).collect()
}

const PROTOCOLS: &[&str] = &["tcp", "udp", "sctp"];
const SCHEDULERS: &[&str] = &["wlc", "rr", "wrr", "lc", "sed", "nq", "lblc", "lblcr", "dh", "sh", "mh", "fo", "ovf"];
const FORWARDINGS: &[&str] = &["dr", "nat", "tun"];
const REAL_FORWARDINGS: &[&str] = &["default", "dr", "nat", "tun"];

fn o<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl Form {
    fn new(kind: FormKind, title: impl Into<String>, fields: Vec<Field>) -> Self {
        Form { kind, title: title.into(), fields, focus: 0, errors: Vec::new() }
    }

    /// The form for `kind`, filled from `cfg` when it edits something.
    pub fn open(kind: FormKind, cfg: &Config) -> Option<Form> {
        Some(match kind {
            FormKind::AddService | FormKind::EditService(_) => {
                let s = match kind {
                    FormKind::EditService(i) => cfg.services.get(i)?.clone(),
                    _ => Service::default(),
                };
                let title = match kind {
                    FormKind::EditService(_) => format!("Edit service {}", s.label()),
                    _ => "Add service".into(),
                };
                Form::new(
                    kind,
                    title,
                    vec![
                        Field::new("Name", o(&s.name), check_name, "optional label, e.g. web"),
                        Field::new("Address", o(&s.address), check_endpoint_opt, "VIP:port, e.g. 192.0.2.10:80"),
                        Field::new("Fwmark", o(&s.fwmark), check_u32, "instead of an address: a firewall mark"),
                        Field::choice("Protocol", s.protocol.as_str(), PROTOCOLS, check_protocol),
                        Field::choice("Scheduler", s.scheduler.as_str(), SCHEDULERS, check_scheduler),
                        Field::choice("Forwarding", s.forwarding.as_str(), FORWARDINGS, check_forwarding),
                        Field::new(
                            "Persistence",
                            s.persistence.as_ref().map(|p| p.timeout.to_string()).unwrap_or_default(),
                            check_u32,
                            "seconds a client sticks to its real; empty = none",
                        ),
                    ],
                )
            }
            FormKind::AddReal(i) | FormKind::EditReal(i, _) => {
                let svc = cfg.services.get(i)?;
                let r = match kind {
                    FormKind::EditReal(_, j) => svc.reals.get(j)?.clone(),
                    _ => Real::new(Endpoint { addr: IpAddr::from([0, 0, 0, 0]), port: None }),
                };
                let adding = matches!(kind, FormKind::AddReal(_));
                let title = if adding {
                    format!("Add real server to {}", svc.label())
                } else {
                    format!("Edit real {} of {}", r.address, svc.label())
                };
                Form::new(
                    kind,
                    title,
                    vec![
                        Field::new(
                            "Address",
                            if adding { String::new() } else { r.address.to_string() },
                            check_endpoint,
                            "IP[:port]; port defaults to the service's",
                        ),
                        Field::new("Weight", r.weight.to_string(), check_weight, "0..65535; 0 = quiesced"),
                        Field::choice(
                            "Forwarding",
                            r.forwarding.map(|f| f.as_str()).unwrap_or("default"),
                            REAL_FORWARDINGS,
                            check_forwarding_opt,
                        ),
                        Field::new(
                            "Upper thresh",
                            nz(r.upper_threshold),
                            check_u32,
                            "stop scheduling above this many conns",
                        ),
                        Field::new("Lower thresh", nz(r.lower_threshold), check_u32, "resume below this many"),
                    ],
                )
            }
            FormKind::AddInterface | FormKind::EditInterface(_) => {
                let it = match kind {
                    FormKind::EditInterface(i) => cfg.interfaces.get(i)?.clone(),
                    _ => Interface { name: String::new(), mac: None, mtu: None, addresses: Vec::new(), vlan: None },
                };
                let addrs = it.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                let title = if it.name.is_empty() {
                    "Add interface".to_string()
                } else {
                    format!("Edit interface {}", it.name)
                };
                Form::new(
                    kind,
                    title,
                    vec![
                        Field::new("Name", it.name.clone(), check_ifname, "e.g. eth0, lan"),
                        Field::new("MAC", o(&it.mac), check_mac, "optional: match this NIC and rename it"),
                        Field::new("MTU", o(&it.mtu), check_u32, "optional"),
                        Field::new("Addresses", addrs, check_ifaddrs, "comma-separated, e.g. 192.0.2.2/24"),
                        Field::new(
                            "VLAN parent",
                            it.vlan.as_ref().map(|v| v.parent.clone()).unwrap_or_default(),
                            check_ifname_opt,
                            "makes it an 802.1Q VLAN on this interface",
                        ),
                        Field::new(
                            "VLAN id",
                            it.vlan.as_ref().map(|v| v.id.to_string()).unwrap_or_default(),
                            check_u16,
                            "1..4094",
                        ),
                    ],
                )
            }
            FormKind::AddRoute | FormKind::EditRoute(_) => {
                let r = match kind {
                    FormKind::EditRoute(i) => Some(cfg.routes.get(i)?.clone()),
                    _ => None,
                };
                let title = if r.is_some() { "Edit route" } else { "Add route" };
                Form::new(
                    kind,
                    title,
                    vec![
                        Field::new(
                            "Destination",
                            r.as_ref().map(|r| r.destination.to_string()).unwrap_or_default(),
                            check_prefix,
                            "default, default6 or a prefix like 10.0.0.0/8",
                        ),
                        Field::new("Gateway", r.as_ref().map(|r| o(&r.gateway)).unwrap_or_default(), check_ip_opt, ""),
                        Field::new(
                            "Interface",
                            r.as_ref().map(|r| o(&r.interface)).unwrap_or_default(),
                            check_ifname_opt,
                            "required without a gateway",
                        ),
                        Field::new("Metric", r.as_ref().map(|r| o(&r.metric)).unwrap_or_default(), check_u32, ""),
                    ],
                )
            }
            FormKind::AddVip | FormKind::EditVip(_) => {
                let v = match kind {
                    FormKind::EditVip(i) => Some(cfg.vips.get(i)?.clone()),
                    _ => None,
                };
                let title = if v.is_some() { "Edit static VIP" } else { "Add static VIP" };
                Form::new(
                    kind,
                    title,
                    vec![
                        Field::new(
                            "Address",
                            v.as_ref().map(|v| v.address.to_string()).unwrap_or_default(),
                            check_ifaddr,
                            "e.g. 192.0.2.10 (host address) or 192.0.2.10/24",
                        ),
                        Field::new(
                            "Interface",
                            v.as_ref().map(|v| v.interface.clone()).unwrap_or_default(),
                            check_ifname,
                            "",
                        ),
                        Field::new("Label", v.as_ref().map(|v| o(&v.label)).unwrap_or_default(), any, "optional"),
                    ],
                )
            }
            FormKind::System => Form::new(
                kind,
                "System settings",
                vec![Field::new("Hostname", cfg.system.hostname.clone(), check_hostname, "letters, digits, '-'")],
            ),
            FormKind::Password => Form::new(
                kind,
                "Set the console password",
                vec![Field::secret("New password"), Field::secret("Repeat")],
            ),
            FormKind::FactoryReset => Form::new(
                kind,
                "Reset to factory defaults",
                vec![Field::new("Type RESET", "", check_reset, "removes services, network, VIPs; keeps the password")],
            ),
        })
    }

    /// Handles a key.
    pub fn key(&mut self, k: KeyEvent) -> FormAction {
        let n = self.fields.len();
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Esc => return FormAction::Cancel,
            KeyCode::Enter => return FormAction::Submit,
            KeyCode::Tab | KeyCode::Down => self.focus = (self.focus + 1) % n.max(1),
            KeyCode::BackTab | KeyCode::Up => self.focus = (self.focus + n.max(1) - 1) % n.max(1),
            _ => {
                let Some(f) = self.fields.get_mut(self.focus) else { return FormAction::None };
                match (k.code, f.kind) {
                    (KeyCode::Left, FieldKind::Choice(opts)) => cycle(f, opts, -1),
                    (KeyCode::Right | KeyCode::Char(' '), FieldKind::Choice(opts)) => cycle(f, opts, 1),
                    (KeyCode::Backspace, _) => {
                        f.value.pop();
                    }
                    (KeyCode::Char('u'), _) if ctrl => f.value.clear(),
                    (KeyCode::Char(c), _) if !ctrl && !c.is_control() && f.value.len() < 200 => f.value.push(c),
                    _ => {}
                }
                self.errors.clear();
            }
        }
        FormAction::None
    }

    /// Field errors, by field index.
    pub fn field_errors(&self) -> Vec<(usize, String)> {
        self.fields.iter().enumerate().filter_map(|(i, f)| f.error().map(|e| (i, e))).collect()
    }

    fn v(&self, i: usize) -> &str {
        self.fields.get(i).map(|f| f.value.trim()).unwrap_or("")
    }

    /// Applies the form to `cfg`: the edited config and a one-line summary,
    /// or the field errors. The whole-config check is the caller's (lbd's
    /// parser on the serialized result).
    pub fn apply(&self, cfg: &Config) -> Result<(Config, String), Vec<String>> {
        let errs: Vec<String> =
            self.field_errors().into_iter().map(|(i, e)| format!("{}: {e}", self.fields[i].label)).collect();
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut c = cfg.clone();
        let e = |s: String| vec![s];
        let summary = match self.kind {
            FormKind::AddService | FormKind::EditService(_) => {
                let mut s = match self.kind {
                    FormKind::EditService(i) => c.services.get(i).cloned().ok_or_else(|| e("service gone".into()))?,
                    _ => Service::default(),
                };
                s.name = (!self.v(0).is_empty()).then(|| self.v(0).to_string());
                s.address = opt(self.v(1)).map_err(e)?;
                s.fwmark = opt(self.v(2)).map_err(|_| e("Fwmark: not a number".into()))?;
                s.protocol = self.v(3).parse().map_err(e)?;
                s.scheduler = self.v(4).parse().map_err(e)?;
                s.forwarding = self.v(5).parse().map_err(e)?;
                s.persistence = match opt::<u32>(self.v(6)).map_err(|_| e("Persistence: not a number".into()))? {
                    None => None,
                    Some(t) => Some(Persistence { timeout: t, ..s.persistence.clone().unwrap_or_default() }),
                };
                if s.address.is_none() && s.fwmark.is_none() {
                    return Err(e("Address: give an address:port or a fwmark".into()));
                }
                let label = s.label();
                match self.kind {
                    FormKind::EditService(i) => {
                        c.services[i] = s;
                        format!("edit service {label}")
                    }
                    _ => {
                        c.services.push(s);
                        format!("add service {label}")
                    }
                }
            }
            FormKind::AddReal(i) | FormKind::EditReal(i, _) => {
                let svc = c.services.get_mut(i).ok_or_else(|| e("service gone".into()))?;
                let mut r = match self.kind {
                    FormKind::EditReal(_, j) => svc.reals.get(j).cloned().ok_or_else(|| e("real gone".into()))?,
                    _ => Real::new(self.v(0).parse().map_err(e)?),
                };
                r.address = self.v(0).parse().map_err(e)?;
                r.weight = opt(self.v(1)).map_err(|_| e("Weight: not a number".into()))?.unwrap_or(1);
                r.forwarding = if self.v(2) == "default" { None } else { opt(self.v(2)).map_err(e)? };
                r.upper_threshold = opt(self.v(3)).map_err(|_| e("Upper: not a number".into()))?.unwrap_or(0);
                r.lower_threshold = opt(self.v(4)).map_err(|_| e("Lower: not a number".into()))?.unwrap_or(0);
                let label = svc.label();
                match self.kind {
                    FormKind::EditReal(_, j) => {
                        let s = format!("edit real {} of {label}", r.address);
                        svc.reals[j] = r;
                        s
                    }
                    _ => {
                        let s = format!("add real {} to {label}", r.address);
                        svc.reals.push(r);
                        s
                    }
                }
            }
            FormKind::AddInterface | FormKind::EditInterface(_) => {
                let mut it = match self.kind {
                    FormKind::EditInterface(i) => {
                        c.interfaces.get(i).cloned().ok_or_else(|| e("interface gone".into()))?
                    }
                    _ => Interface { name: String::new(), mac: None, mtu: None, addresses: Vec::new(), vlan: None },
                };
                it.name = self.v(0).to_string();
                it.mac = opt(self.v(1)).map_err(e)?;
                it.mtu = opt(self.v(2)).map_err(|_| e("MTU: not a number".into()))?;
                it.addresses = split_list(self.v(3)).iter().map(|a| a.parse()).collect::<Result<_, _>>().map_err(e)?;
                it.vlan = match (self.v(4), opt::<u16>(self.v(5)).map_err(|_| e("VLAN id: not a number".into()))?) {
                    ("", None) => None,
                    ("", Some(_)) => return Err(e("VLAN parent: required with a VLAN id".into())),
                    (_, None) => return Err(e("VLAN id: required with a VLAN parent".into())),
                    (p, Some(id)) => Some(Vlan { parent: p.to_string(), id }),
                };
                let name = it.name.clone();
                match self.kind {
                    FormKind::EditInterface(i) => {
                        c.interfaces[i] = it;
                        format!("edit interface {name}")
                    }
                    _ => {
                        c.interfaces.push(it);
                        format!("add interface {name}")
                    }
                }
            }
            FormKind::AddRoute | FormKind::EditRoute(_) => {
                let r = Route {
                    destination: self.v(0).parse().map_err(e)?,
                    gateway: opt(self.v(1)).map_err(|_| e("Gateway: not an IP address".into()))?,
                    interface: (!self.v(2).is_empty()).then(|| self.v(2).to_string()),
                    metric: opt(self.v(3)).map_err(|_| e("Metric: not a number".into()))?,
                };
                let d = r.destination.to_string();
                match self.kind {
                    FormKind::EditRoute(i) => {
                        *c.routes.get_mut(i).ok_or_else(|| e("route gone".into()))? = r;
                        format!("edit route {d}")
                    }
                    _ => {
                        c.routes.push(r);
                        format!("add route {d}")
                    }
                }
            }
            FormKind::AddVip | FormKind::EditVip(_) => {
                let v = Vip {
                    address: self.v(0).parse().map_err(e)?,
                    interface: self.v(1).to_string(),
                    label: (!self.v(2).is_empty()).then(|| self.v(2).to_string()),
                };
                let a = v.address.to_string();
                match self.kind {
                    FormKind::EditVip(i) => {
                        *c.vips.get_mut(i).ok_or_else(|| e("VIP gone".into()))? = v;
                        format!("edit VIP {a}")
                    }
                    _ => {
                        c.vips.push(v);
                        format!("add VIP {a}")
                    }
                }
            }
            FormKind::System => {
                c.system.hostname = self.v(0).to_string();
                format!("set hostname {}", c.system.hostname)
            }
            FormKind::Password | FormKind::FactoryReset => {
                return Err(e("this form is not a config edit".into()));
            }
        };
        Ok((c, summary))
    }
}

fn nz(v: u32) -> String {
    if v == 0 { String::new() } else { v.to_string() }
}

fn cycle(f: &mut Field, opts: &[&str], dir: isize) {
    let n = opts.len() as isize;
    let cur = opts.iter().position(|o| *o == f.value).map(|p| p as isize).unwrap_or(-1);
    let next = if cur < 0 && dir < 0 { n - 1 } else { (cur + dir).rem_euclid(n) };
    f.value = opts[next as usize].to_string();
}

/// Parses a candidate config the way lbd will: `Err` holds lbd's own error
/// lines (`file:line:col: path: why`).
pub fn check_whole(cfg: &Config) -> Result<String, Vec<String>> {
    let text = cfg.to_toml();
    lbd::config::parse(&text, "staged").map(|_| text).map_err(|es| es.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typ(f: &mut Form, s: &str) {
        for c in s.chars() {
            f.key(KeyEvent::from(KeyCode::Char(c)));
        }
    }

    #[test]
    fn service_form_adds_a_service() {
        let cfg = Config::default();
        let mut f = Form::open(FormKind::AddService, &cfg).unwrap();
        typ(&mut f, "web");
        f.key(KeyEvent::from(KeyCode::Tab));
        typ(&mut f, "192.0.2.10:80");
        let (c, s) = f.apply(&cfg).unwrap();
        assert_eq!(s, "add service web");
        assert_eq!(c.services[0].address.unwrap().to_string(), "192.0.2.10:80");
        assert_eq!(c.services[0].scheduler, Scheduler::Wlc);
    }

    #[test]
    fn bad_address_is_a_field_error() {
        let cfg = Config::default();
        let mut f = Form::open(FormKind::AddService, &cfg).unwrap();
        f.key(KeyEvent::from(KeyCode::Tab));
        typ(&mut f, "192.0.2.300:80");
        let errs = f.field_errors();
        assert_eq!(errs.len(), 1);
        assert!(errs[0].1.contains("is not an address[:port]"), "{errs:?}");
        assert!(f.apply(&cfg).is_err());
    }

    #[test]
    fn choices_cycle() {
        let cfg = Config::default();
        let mut f = Form::open(FormKind::AddService, &cfg).unwrap();
        f.focus = 4;
        f.key(KeyEvent::from(KeyCode::Right));
        assert_eq!(f.fields[4].value, "rr");
        f.key(KeyEvent::from(KeyCode::Left));
        f.key(KeyEvent::from(KeyCode::Left));
        assert_eq!(f.fields[4].value, "ovf");
    }
}

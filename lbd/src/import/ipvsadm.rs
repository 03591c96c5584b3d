//! ipvsadm rules → [`Config`].
//!
//! Reads `ipvsadm -S`/`-Sn` output (one rule per line, as `ipvsadm -R`
//! reads it) and shell scripts of ipvsadm command lines as operators write
//! them: `NAME=value` variables and `$NAME`/`${NAME}` (`ipv=/sbin/ipvsadm`,
//! `$ipv -A -t $vip:80 -s rr`), `#` comments, a pasted `[root@host ~]#`
//! prompt, trailing `//` annotations. Rules are applied in order with the
//! same code as `lbd ctl restore` (`-A -E -D -a -e -d -C`, `-t -u
//! --sctp-service -f -6`, `-s -p -M --pe -o -b`, `-r -g -m -i -w -x -y`,
//! tunnel options), plus `--set` (timeouts). Every other line is reported.

use std::collections::HashMap;

use super::{Kind, Loc, Origins, Outcome, Report, finish, tidy_forwarding};
use crate::config::{self, Config, Endpoint};

/// Imports ipvsadm rules or a script; `name` names the input in the report.
pub fn import_text(text: &str, name: &str) -> Outcome {
    let mut report = Report::default();
    let mut services: Vec<config::Service> = Vec::new();
    let mut cfg = Config::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    let mut svc_loc: HashMap<String, Loc> = HashMap::new();
    let mut real_loc: HashMap<(String, String), Loc> = HashMap::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, raw)) = lines.next() {
        let loc = Loc { file: name.to_string(), line: n + 1 };
        let mut line = raw.trim().to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.next() {
                Some((_, more)) => {
                    line.push(' ');
                    line.push_str(more.trim());
                }
                None => break,
            }
            if line.len() > 64 * 1024 {
                break;
            }
        }
        let line = strip_prompt(&line);
        let words = match shell_words(line) {
            Ok(w) => w,
            Err(e) => {
                report.error(&loc, "syntax", e);
                continue;
            }
        };
        if words.is_empty() {
            continue;
        }
        // `NAME=value` (or `export NAME=value`): a variable.
        let assign: Vec<&String> = words.iter().filter(|w| w.as_str() != "export").collect();
        if assign.len() == 1
            && let Some((k, v)) = assign[0].split_once('=')
            && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let v = substitute(v, &vars);
            vars.insert(k.to_string(), v);
            continue;
        }
        let words: Vec<String> = words.iter().map(|w| substitute(w, &vars)).collect();
        let segments: Vec<&[String]> =
            words.split(|w| matches!(w.as_str(), "|" | "||" | "&&" | ";")).filter(|s| !s.is_empty()).collect();
        let is_ipvsadm = |s: &[String]| s.first().is_some_and(|w| w == "ipvsadm" || w.ends_with("/ipvsadm"));
        let rule_line = words[0].starts_with('-');
        if segments.len() > 1 {
            let what = if segments.iter().any(|s| is_ipvsadm(s)) { "ipvsadm" } else { words[0].as_str() };
            report.push(
                &loc,
                Kind::NotImported,
                what,
                "a compound or conditional shell command is not evaluated; write the rules it would apply as \
                 plain lines (run-time decisions such as adding a server when it answers belong to health checks, \
                 pending in lvsbox)",
            );
            continue;
        }
        if !is_ipvsadm(&words) && !rule_line {
            other_command(&mut report, &loc, &words);
            continue;
        }
        let args: Vec<String> = if rule_line { words.clone() } else { words[1..].to_vec() };
        // Redirections: `ipvsadm -S > file`, `ipvsadm -R < file`.
        let first = args.first().map(String::as_str).unwrap_or("");
        let listing = args.iter().any(|a| {
            matches!(a.as_str(), "-L" | "-l" | "--list" | "-S" | "--save" | "-Z" | "--zero" | "-h" | "--help" | "-v")
                || a.starts_with("-L")
                || a.starts_with("-l")
                || a.starts_with("-S")
        });
        if listing || args.is_empty() {
            report.push(&loc, Kind::Note, format!("ipvsadm {first}"), "lists, saves or zeroes; nothing to import");
            continue;
        }
        if args.iter().any(|a| a == "-R" || a == "--restore") {
            report.push(
                &loc,
                Kind::NotImported,
                "ipvsadm -R",
                "reads rules from another file: import that file (`lbd import ipvsadm FILE`)",
            );
            continue;
        }
        if args.iter().any(|a| a == "--start-daemon" || a == "--stop-daemon") {
            report.push(
                &loc,
                Kind::NotImported,
                "ipvsadm --start-daemon",
                "configure the connection sync daemon as [vrrp.sync_daemon] (interface, syncid, and the VRRP \
                 instance it follows)",
            );
            continue;
        }
        if first == "--set" {
            let t: Vec<Option<u32>> = args[1..].iter().map(|a| a.parse::<u32>().ok()).collect();
            match t.as_slice() {
                [Some(tcp), Some(fin), Some(udp)] => {
                    let nz = |v: u32| (v != 0).then_some(v);
                    cfg.ipvs.timeouts.tcp = nz(*tcp).or(cfg.ipvs.timeouts.tcp);
                    cfg.ipvs.timeouts.tcpfin = nz(*fin).or(cfg.ipvs.timeouts.tcpfin);
                    cfg.ipvs.timeouts.udp = nz(*udp).or(cfg.ipvs.timeouts.udp);
                }
                _ => report.error(&loc, "ipvsadm --set", "needs three numbers: tcp tcpfin udp"),
            }
            continue;
        }
        let args = match resolve_names(&args) {
            Ok(a) => a,
            Err(e) => {
                report.error(&loc, format!("ipvsadm {first}"), e);
                continue;
            }
        };
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let before: Vec<(String, usize)> = services.iter().map(|s| (s.label(), s.reals.len())).collect();
        match crate::ipvsadm::restore_line(&mut services, &refs) {
            Err(e) => report.error(&loc, format!("ipvsadm {first}"), e),
            Ok(()) => {
                // Remember where each service and real came from.
                for s in &services {
                    let label = s.label();
                    let old = before.iter().find(|(l, _)| *l == label);
                    if old.is_none() || matches!(first, "-E" | "--edit-service") {
                        svc_loc.entry(label.clone()).or_insert_with(|| loc.clone());
                    }
                    if old.is_none_or(|(_, n)| *n != s.reals.len()) || matches!(first, "-e" | "--edit-server") {
                        for r in &s.reals {
                            real_loc.entry((label.clone(), r.address.to_string())).or_insert_with(|| loc.clone());
                        }
                    }
                }
            }
        }
    }
    cfg.services = services;
    tidy_forwarding(&mut cfg);
    let mut origins = Origins::default();
    for (i, s) in cfg.services.iter().enumerate() {
        let label = s.label();
        if let Some(l) = svc_loc.get(&label) {
            origins.set(format!("services[{i}]"), l);
        }
        for (j, r) in s.reals.iter().enumerate() {
            if let Some(l) = real_loc.get(&(label.clone(), r.address.to_string())) {
                origins.set(format!("services[{i}].reals[{j}]"), l);
            }
        }
    }
    let header = format!(
        "# Imported from {name} by `lbd import ipvsadm`.\n\
         # Check the import report for what was not imported; `lbd check` validates this file.\n\n"
    );
    finish(cfg, &header, &origins, &Loc { file: name.to_string(), line: 1 }, report)
}

/// Drops a pasted shell prompt: `[root@lb ~]# ipvsadm ...`.
fn strip_prompt(line: &str) -> &str {
    if line.starts_with('[')
        && let Some(i) = line.find("]# ").or_else(|| line.find("]$ "))
    {
        return line[i + 3..].trim_start();
    }
    line
}

/// Shell-like words: quotes removed, `#` (at a word start) and `//` (blog
/// annotations) end the line, `|`, `||`, `&&`, `;` are words of their own.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            '/' if !in_word && chars.peek() == Some(&'/') => break,
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(format!("unterminated {c}quoted string")),
                        Some(x) if x == c => break,
                        Some('\\') if c == '"' => {
                            if let Some(e) = chars.next() {
                                cur.push(e);
                            }
                        }
                        Some(x) => cur.push(x),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            '|' | '&' | ';' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                let mut op = c.to_string();
                if c != ';' && chars.peek() == Some(&c) {
                    chars.next();
                    op.push(c);
                }
                if op == "&" {
                    // Background: same command.
                    continue;
                }
                out.push(op);
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn substitute(w: &str, vars: &HashMap<String, String>) -> String {
    let c: Vec<char> = w.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '$' {
            let (name, end) = super::var_ref(&c, i, |ch, _| ch.is_ascii_alphanumeric() || ch == '_');
            if let Some(v) = vars.get(&name) {
                out.push_str(v);
                i = end;
                if out.len() > 64 * 1024 {
                    break;
                }
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

/// Port names `ipvsadm -S` (without `-n`) prints, from /etc/services.
fn port_by_name(name: &str) -> Option<u16> {
    Some(match name {
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "domain" => 53,
        "http" | "www" => 80,
        "pop3" => 110,
        "ntp" => 123,
        "imap2" | "imap" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "ldaps" => 636,
        "imaps" => 993,
        "pop3s" => 995,
        "mysql" => 3306,
        "postgresql" => 5432,
        "http-alt" => 8080,
        _ => return None,
    })
}

/// Service and real addresses: port names to numbers; a host name is an
/// error (`ipvsadm -Sn` prints addresses).
fn resolve_names(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = args.to_vec();
    for i in 1..out.len() {
        let takes_addr =
            matches!(args[i - 1].as_str(), "-t" | "--tcp-service" | "-u" | "--udp-service" | "--sctp-service" | "-r");
        let takes_addr = takes_addr || args[i - 1] == "--real-server";
        if !takes_addr || out[i].parse::<Endpoint>().is_ok() {
            continue;
        }
        let a = &args[i];
        let (host, port) = match a.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') => (h, Some(p)),
            _ => (a.as_str(), None),
        };
        let port = match port {
            Some(p) if p.parse::<u16>().is_ok() => p.to_string(),
            Some(p) => match port_by_name(p) {
                Some(n) => n.to_string(),
                None => return Err(format!("unknown port name `{p}` in `{a}`: save the rules with `ipvsadm -Sn`")),
            },
            None => String::new(),
        };
        if host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_err() {
            return Err(format!("`{host}` is a host name, not an address: save the rules with `ipvsadm -Sn`"));
        }
        out[i] = if port.is_empty() { host.to_string() } else { format!("{host}:{port}") };
    }
    Ok(out)
}

/// A line that is not an ipvsadm command: reported with what to do.
fn other_command(report: &mut Report, loc: &Loc, words: &[String]) {
    let cmd = words[0].rsplit('/').next().unwrap_or(&words[0]).to_string();
    let text = words.join(" ");
    let (kind, msg): (Kind, &str) = if text.contains("/proc/sys/net/ipv4/ip_forward") {
        (Kind::Note, "IP forwarding: lvsbox sets it from system.ip_forward (default true)")
    } else if text.contains("arp_ignore") || text.contains("arp_announce") {
        (Kind::NotImported, "ARP settings for DR belong on the real servers, not on the director; keep them there")
    } else {
        match cmd.as_str() {
            "ifconfig" | "ip" => (
                Kind::NotImported,
                "addresses are config in lvsbox: add the VIP as [[vips]] (address, interface) and the box's own \
                 address under [[interfaces]]",
            ),
            "route" => (Kind::NotImported, "add routes as [[routes]]; a VIP on an interface needs no host route"),
            "iptables" | "ip6tables" | "nft" => (
                Kind::NotImported,
                "lvsbox does not set firewall marks yet: keep the rule that marks the packets for an fwmark service",
            ),
            "modprobe" | "insmod" => (Kind::Note, "lvsbox loads the IPVS modules itself"),
            "yum" | "apt" | "apt-get" | "dnf" | "service" | "systemctl" | "chkconfig" => {
                (Kind::Note, "package or service management; nothing to import")
            }
            "echo" | "sleep" | "true" | ":" => (Kind::Note, "no effect on the IPVS table; nothing to import"),
            _ => (
                Kind::NotImported,
                "not an ipvsadm rule, so not imported; shell logic (if, for, case) is not evaluated: write the \
                 rules it applies as plain lines",
            ),
        }
    };
    report.push(loc, kind, cmd, msg);
}

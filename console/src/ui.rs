//! Drawing: `draw(&App, &mut Frame)`, nothing else. Every state is written
//! out in words (UP, DRAINING, ROLLED BACK ...); colour only underlines it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::app::{App, ApplyState, LogSource, MAX_PASTE, Mode, NetItem, SYS_MENU, Screen, SysView};
use crate::diff;
use crate::forms::{FieldKind, Form};
use crate::model::{self, fmt_num, fmt_uptime};

const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// Smallest area the full UI is laid out in; below it a one-line notice.
pub const MIN_W: u16 = 40;
/// See [`MIN_W`].
pub const MIN_H: u16 = 10;

struct Th {
    ascii: bool,
    color: bool,
}

impl Th {
    fn block<'a>(&self, title: impl Into<Line<'a>>) -> Block<'a> {
        Block::bordered().border_set(if self.ascii { ASCII_BORDER } else { border::PLAIN }).title(title)
    }
    fn sel(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    fn bad(&self) -> Style {
        let s = Style::default().add_modifier(Modifier::BOLD);
        if self.color { s.fg(Color::Red) } else { s }
    }
    fn warn(&self) -> Style {
        let s = Style::default().add_modifier(Modifier::BOLD);
        if self.color { s.fg(Color::Yellow) } else { s }
    }
    fn good(&self) -> Style {
        if self.color { Style::default().fg(Color::Green) } else { Style::default() }
    }
    fn dim(&self) -> Style {
        if self.color { Style::default().fg(Color::DarkGray) } else { Style::default() }
    }
    fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
}

/// Draws the whole screen. Never panics on any area, 0×0 included.
pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let th = Th { ascii: app.opts.ascii, color: app.opts.color };
    if area.width < MIN_W || area.height < MIN_H {
        let t = format!("lvsbox: terminal {}x{} too small", area.width, area.height);
        f.render_widget(Paragraph::new(t).wrap(Wrap { trim: true }), area);
        return;
    }
    let [header, body, msg, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1), Constraint::Length(1)])
            .areas(area);
    draw_header(app, &th, f, header);
    match app.mode {
        Mode::Loading => {
            let mut lines = vec![Line::from("Waiting for lbd (the load-balancer daemon) to answer..."), Line::from("")];
            if let Some(e) = &app.lbd_err {
                lines.push(Line::styled(e.clone(), th.bad()));
            }
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(th.block(" lvsbox console ")), body);
            footer_line(f, footer, "^L redraw");
        }
        Mode::FirstBoot => {
            let [intro, rest] = Layout::vertical([Constraint::Length(3), Constraint::Min(1)]).areas(body);
            f.render_widget(
                Paragraph::new(vec![
                    Line::styled("No console password is set on this box.", th.warn()),
                    Line::from("Choose one now (at least 8 characters, typed twice); it is stored as a salted"),
                    Line::from("PBKDF2 hash in the config. Nothing else is reachable until it is set."),
                ])
                .wrap(Wrap { trim: true }),
                intro,
            );
            if let Some(form) = &app.form {
                draw_form(form, &th, f, rest, app.apply != ApplyState::Idle);
            }
            footer_line(f, footer, "Tab/Up/Down field  Enter set password  ^L redraw");
        }
        Mode::Login => {
            draw_login(app, &th, f, body);
            footer_line(f, footer, "Enter log in  Esc clear  ^L redraw");
        }
        Mode::Main => {
            let [tabs, main] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(body);
            draw_tabs(app, &th, f, tabs);
            match app.screen {
                Screen::Dashboard => draw_dashboard(app, &th, f, main),
                Screen::Services => draw_services(app, &th, f, main),
                Screen::Network => draw_network(app, &th, f, main),
                Screen::Connections => draw_conns(app, &th, f, main),
                Screen::Logs => draw_logs(app, &th, f, main),
                Screen::System => draw_system(app, &th, f, main),
                Screen::Changes => draw_changes(app, &th, f, main),
                Screen::Vrrp => draw_vrrp(app, &th, f, main),
            }
            if let Some(form) = &app.form {
                let r = popup(main, main.width.min(100), 22);
                draw_form(form, &th, f, r, app.apply != ApplyState::Idle);
            }
            if let Some(ask) = &app.ask {
                let r = popup(main, 70, 5);
                f.render_widget(Clear, r);
                f.render_widget(
                    Paragraph::new(vec![Line::styled(ask.text.clone(), th.bold()), Line::from("y = yes, n/Esc = no")])
                        .wrap(Wrap { trim: true })
                        .block(th.block(" Confirm ")),
                    r,
                );
            }
            footer_line(f, footer, &footer_keys(app));
        }
    }
    if let Some(m) = &app.msg {
        let st = if m.error { th.bad() } else { th.bold() };
        let prefix = if m.error { "! " } else { "" };
        f.render_widget(Paragraph::new(Line::styled(format!("{prefix}{}", m.text), st)), msg);
    }
}

fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

fn footer_line(f: &mut Frame, area: Rect, s: &str) {
    f.render_widget(
        Paragraph::new(Line::from(s.to_string()).style(Style::default().add_modifier(Modifier::REVERSED))),
        area,
    );
}

fn footer_keys(app: &App) -> String {
    if app.form.is_some() {
        return "Tab/Up/Down field  Left/Right choose  Enter stage  Esc cancel".into();
    }
    if app.ask.is_some() {
        return "y yes  n/Esc no".into();
    }
    if app.filter_edit {
        return "type to filter  Enter done  Esc clear".into();
    }
    let s = match app.screen {
        Screen::Dashboard => "1-8/F1-F8 screens  0/F10 log out  ^L redraw",
        Screen::Vrrp => "Up/Down select  m maintenance on/off  0 log out",
        Screen::Services if app.svc_open.is_some() => {
            "a add real  e edit  d remove  w drain  u enable  s edit service  Esc back"
        }
        Screen::Services => "Up/Down select  Enter open  a add  e edit  d delete  0 log out",
        Screen::Network => "i add iface  r add route  v add VIP  e edit  d delete  0 log out",
        Screen::Connections => "/ filter  Esc clear filter  Up/Down scroll  0 log out",
        Screen::Logs => "s source  f level  / filter  Up/Down scroll  End newest",
        Screen::System if app.sys_view == SysView::Import => match &app.paste {
            _ if app.pasting() => "paste now  ^D convert  Esc cancel  (Enter, Tab, digits go into the text)",
            Some(p) if p.converting => "converting with lbd...",
            Some(p) if p.result.as_ref().is_some_and(|r| r.merged.is_some()) => {
                "s stage it  p paste again  Up/Down scroll  Esc drop it"
            }
            _ => "p paste again  Up/Down scroll  Esc back",
        },
        Screen::System if app.sys_view == SysView::History => "Up/Down select  Enter show  Esc back",
        Screen::System if app.sys_view == SysView::Version => "s stage this version  Up/Down scroll  Esc back",
        Screen::System if app.sys_view != SysView::Menu => "Up/Down/PgUp/PgDn scroll  Esc back",
        Screen::System => "Up/Down + Enter, or the letter  0 log out",
        Screen::Changes => {
            if app.confirm_left().is_some() {
                "c CONFIRM  r roll back now  Up/Down scroll"
            } else {
                "a apply  v validate again  u discard all  Up/Down scroll"
            }
        }
    };
    s.into()
}

fn draw_header(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let st = app.status.as_ref();
    let host = st
        .map(|s| s.hostname.clone())
        .or_else(|| app.applied.as_ref().map(|c| c.system.hostname.clone()))
        .unwrap_or_else(|| "lvsbox".into());
    let mut spans =
        vec![Span::styled(format!(" lvsbox {} ", lbd::paths::VERSION), th.bold()), Span::raw(format!("{host} "))];
    if let Some(s) = st {
        spans.push(Span::raw(format!("up {} ", fmt_uptime(s.uptime_s))));
        match s.config.status.state.as_str() {
            "invalid" => spans.push(Span::styled("CONFIG INVALID ", th.bad())),
            "missing" => spans.push(Span::styled("no config ", th.warn())),
            _ => spans.push(Span::raw("config ok ")),
        }
    }
    if app.lbd_err.is_some() {
        spans.push(Span::styled("lbd NOT REACHABLE ", th.bad()));
    }
    if app.mode == Mode::Main {
        if !app.notes.is_empty() {
            spans.push(Span::styled(format!("staged {} ", app.notes.len()), th.warn()));
        }
        if let Some(left) = app.confirm_left() {
            spans.push(Span::styled(format!("CONFIRM IN {left}s (7) "), th.bad().add_modifier(Modifier::REVERSED)));
        }
    }
    if !app.opts.tty.is_empty() && area.width > 100 {
        spans.push(Span::styled(format!("[{}]", app.opts.tty), th.dim()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tabs(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let mut spans = Vec::new();
    for (s, k, name) in Screen::ALL {
        // Eight tabs fit 80 columns with the long names shortened.
        let name = match (area.width < 100, s) {
            (true, Screen::Network) => "Net",
            (true, Screen::System) => "Sys",
            _ => name,
        };
        let label = if s == Screen::Changes && !app.notes.is_empty() {
            format!("{k} {name}({})", app.notes.len())
        } else {
            format!("{k} {name}")
        };
        if s == app.screen {
            spans.push(Span::styled(format!("[{label}]"), th.sel().add_modifier(Modifier::BOLD)));
        } else {
            spans.push(Span::raw(format!(" {label} ")));
        }
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_login(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let host = app.applied.as_ref().map(|c| c.system.hostname.clone()).unwrap_or_else(|| "lvsbox".into());
    let r = popup(area, 60, 9);
    let mut lines = vec![
        Line::styled(format!("{host}: console login"), th.bold()),
        Line::from(""),
        Line::from(vec![
            Span::raw("Password: "),
            Span::raw("*".repeat(app.login_input.chars().count().min(40))),
            Span::styled("_", th.dim()),
        ]),
        Line::from(""),
    ];
    let left = app.lockout_left();
    if app.checking {
        lines.push(Line::from("Checking..."));
    } else if left > 0 {
        lines.push(Line::styled(format!("Wrong password. Locked: try again in {} s.", left.div_ceil(1000)), th.bad()));
    } else if app.failures > 0 {
        lines.push(Line::styled(format!("{} failed attempt(s). Try again.", app.failures), th.warn()));
    }
    if app.lbd_err.is_some() && app.config_from_file {
        lines.push(Line::styled("lbd is not answering; the password is checked against the file.", th.warn()));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(th.block(" Log in ")), r);
}

fn draw_form(form: &Form, th: &Th, f: &mut Frame, area: Rect, busy: bool) {
    f.render_widget(Clear, area);
    let mut lines = Vec::new();
    for (i, fl) in form.fields.iter().enumerate() {
        let focus = i == form.focus;
        let shown = match fl.kind {
            FieldKind::Secret => "*".repeat(fl.value.chars().count()),
            FieldKind::Choice(_) => format!("< {} >", fl.value),
            FieldKind::Text => fl.value.clone(),
        };
        let cursor = if focus && !matches!(fl.kind, FieldKind::Choice(_)) { "_" } else { "" };
        let mark = if focus { ">" } else { " " };
        let st = if focus { th.bold() } else { Style::default() };
        lines.push(Line::from(vec![
            Span::styled(format!("{mark}{:<13}: ", fl.label), st),
            Span::styled(format!("{shown}{cursor}"), st),
        ]));
        if let Some(e) = fl.error()
            && !fl.value.is_empty()
        {
            lines.push(Line::styled(format!("   ! {e}"), th.bad()));
        }
    }
    if let Some(fl) = form.fields.get(form.focus)
        && !fl.hint.is_empty()
    {
        lines.push(Line::styled(format!("  ({})", fl.hint), th.dim()));
    }
    if busy {
        lines.push(Line::from("  working..."));
    }
    for e in &form.errors {
        lines.push(Line::styled(format!("! {e}"), th.bad()));
    }
    let title = format!(" {} ", form.title);
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(th.block(title)), area);
}

/// Lines of a scrolled list with the selected line marked `>` and reversed.
fn list_lines<'a>(items: &[String], sel: Option<usize>, height: usize, th: &Th) -> Vec<Line<'a>> {
    let off = sel.map(|s| s.saturating_sub(height.saturating_sub(1))).unwrap_or(0);
    items
        .iter()
        .enumerate()
        .skip(off)
        .take(height)
        .map(
            |(i, s)| {
                if Some(i) == sel { Line::styled(format!(">{s}"), th.sel()) } else { Line::from(format!(" {s}")) }
            },
        )
        .collect()
}

fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w { format!("{s:<w$}") } else { s.chars().take(w.saturating_sub(1)).chain(['~']).collect() }
}

fn draw_dashboard(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let wide = area.width >= 120;
    let invalid = app.status.as_ref().is_some_and(|s| s.config.status.state == "invalid");
    // Services (or config errors) get what they need; recent events the rest,
    // at least 4 rows (6 on a normal screen when the config is fine).
    let want = if invalid {
        4 + app.status.as_ref().map(|s| 2 * s.config.status.errors.len() as u16).unwrap_or(0)
    } else {
        3 + app.svc_rows().len().max(1) as u16
    };
    let events_min = if invalid { 4 } else { 6 };
    let mid_h = want.clamp(4, area.height.saturating_sub(8 + events_min).max(4));
    let [top, mid, bottom] =
        Layout::vertical([Constraint::Length(8), Constraint::Length(mid_h), Constraint::Min(4)]).areas(area);
    let [sys, net] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);

    // System
    let mut l = Vec::new();
    match &app.status {
        Some(s) => {
            l.push(Line::from(format!("Host {}  lbd {}", s.hostname, s.version)));
            l.push(Line::from(format!("Up {}", fmt_uptime(s.uptime_s))));
            if s.ipvs.available {
                l.push(Line::from(format!(
                    "IPVS {}: {} svc, {} reals",
                    s.ipvs.version, s.kernel.services, s.kernel.reals
                )));
            } else {
                l.push(Line::styled(
                    format!("IPVS UNAVAILABLE: {}", s.ipvs.error.clone().unwrap_or_default()),
                    th.bad(),
                ));
            }
            let cfg = match s.config.status.state.as_str() {
                "ok" => Line::styled(format!("Config OK ({} services)", s.config.services), th.good()),
                "missing" => Line::styled("Config MISSING: running with defaults", th.warn()),
                other => Line::styled(format!("Config {}", other.to_uppercase()), th.bad()),
            };
            l.push(cfg);
            let last = s.reconcile.last.as_ref();
            let rec = match last.and_then(|x| x.report.error.clone()) {
                Some(e) => Line::styled(format!("Reconcile ERROR: {e}"), th.bad()),
                None if s.reconcile.paused => Line::styled("Reconcile PAUSED (invalid config)", th.bad()),
                None => {
                    let failed = last.map(|x| x.report.failed.len().max(x.report.failed_count)).unwrap_or(0);
                    if failed > 0 {
                        Line::styled(format!("Reconcile: {failed} op(s) FAILED"), th.bad())
                    } else {
                        Line::from(format!("Reconcile ok, {} passes", s.reconcile.passes))
                    }
                }
            };
            l.push(rec);
            if let Some(left) = app.confirm_left() {
                l.push(Line::styled(format!("CONFIRM PENDING: {left} s left (screen 7)"), th.bad()));
            }
        }
        None => l.push(Line::styled(app.lbd_err.clone().unwrap_or_else(|| "waiting for lbd...".into()), th.bad())),
    }
    f.render_widget(Paragraph::new(l).wrap(Wrap { trim: true }).block(th.block(" System ")), sys);

    // Network: VRRP state, live links (read by the console) and the static VIPs' presence.
    let mut l = Vec::new();
    for i in app.vrrp.iter().flat_map(|v| &v.instances) {
        l.push(Line::styled(
            format!(
                "VRRP {} {}{} {} {}",
                i.name,
                i.state.to_uppercase(),
                if i.maintenance { " MAINT" } else { "" },
                i.effective_priority,
                i.vips.first().map(|v| v.split('/').next().unwrap_or(v)).unwrap_or("")
            ),
            vrrp_style(th, &i.state),
        ));
    }
    let live = match &app.net {
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => {
            l.push(Line::styled(format!("cannot read links: {e}"), th.bad()));
            None
        }
        None => {
            l.push(Line::from("reading links..."));
            None
        }
    };
    if let Some(n) = live {
        for k in n.links.iter().filter(|k| k.name != "lo") {
            let st = if k.up && k.oper != "down" && k.oper != "lowerlayerdown" { Style::default() } else { th.warn() };
            l.push(Line::styled(k.line(), st));
        }
        for r in n.routes.iter().filter(|r| r.starts_with("default")) {
            l.push(Line::from(r.clone()));
        }
    }
    if let Some(c) = app.applied.as_ref() {
        for v in &c.vips {
            let on = live.map(|n| n.links.iter().any(|k| k.addrs.contains(&v.address.to_string())));
            let (word, st) = match on {
                Some(true) => ("present", Style::default()),
                Some(false) => ("MISSING", th.bad()),
                None => ("?", Style::default()),
            };
            l.push(Line::styled(format!("VIP {} on {}: {word}", v.address, v.interface), st));
        }
    }
    f.render_widget(Paragraph::new(l).block(th.block(" Network (live) ")), net);

    // Services or config errors
    if invalid {
        let errs = &app.status.as_ref().map(|s| s.config.status.errors.clone()).unwrap_or_default();
        let mut l = vec![Line::styled(
            "The config file is INVALID: lbd keeps the kernel table as it is until a valid config is applied.",
            th.bad(),
        )];
        for e in errs {
            l.push(Line::styled(e.to_string(), th.bad()));
        }
        f.render_widget(Paragraph::new(l).wrap(Wrap { trim: false }).block(th.block(" CONFIG ERRORS ")), mid);
    } else {
        let rows = app.svc_rows();
        let mut l = vec![Line::styled(
            if wide {
                format!(
                    "{} {} {:>4} {:>5} {:>5} {:>7} {:>7} {:>6} {:>6} {:>6}",
                    fit("Service", 16),
                    fit("Virtual", 26),
                    "Up",
                    "Quies",
                    "Drain",
                    "ActConn",
                    "InAct",
                    "CPS",
                    "InPPS",
                    "OutPPS"
                )
            } else {
                format!(
                    "{} {} {:>3} {:>3} {:>3} {:>6} {:>6} {:>5}",
                    fit("Service", 14),
                    fit("Virtual", 23),
                    "Up",
                    "Qui",
                    "Drn",
                    "Active",
                    "InAct",
                    "CPS"
                )
            },
            th.bold(),
        )];
        if rows.is_empty() {
            l.push(Line::from("no services configured (2 = Services, a = add)"));
        }
        for r in &rows {
            let s = if wide {
                format!(
                    "{} {} {:>4} {:>5} {:>5} {:>7} {:>7} {:>6} {:>6} {:>6}",
                    fit(&r.label, 16),
                    fit(&r.key, 26),
                    r.up,
                    r.quiesced,
                    r.draining,
                    r.active,
                    r.inactive,
                    fmt_num(r.stats.cps),
                    fmt_num(r.stats.inpps),
                    fmt_num(r.stats.outpps)
                )
            } else {
                format!(
                    "{} {} {:>3} {:>3} {:>3} {:>6} {:>6} {:>5}",
                    fit(&r.label, 14),
                    fit(&r.key, 23),
                    r.up,
                    r.quiesced,
                    r.draining,
                    r.active,
                    r.inactive,
                    fmt_num(r.stats.cps)
                )
            };
            let st = if r.up == 0 && r.reals > 0 { th.warn() } else { Style::default() };
            l.push(Line::styled(s, st));
        }
        f.render_widget(Paragraph::new(l).block(th.block(" Services (reals up / quiesced / draining) ")), mid);
    }

    // Recent events
    let h = bottom.height.saturating_sub(2) as usize;
    let ev: Vec<Line> = app
        .lbd_logs
        .iter()
        .rev()
        .take(h)
        .rev()
        .map(|e| {
            let st = match model::level_rank(&e.level) {
                0 => th.bad(),
                1 => th.warn(),
                _ => Style::default(),
            };
            Line::styled(format!("{:>8} {:<5} {}", fmt_ms(e.t_ms), e.level.to_uppercase(), e.msg), st)
        })
        .collect();
    f.render_widget(Paragraph::new(ev).block(th.block(" Recent events (lbd) ")), bottom);
}

fn fmt_ms(ms: u64) -> String {
    fmt_uptime(ms / 1000)
}

fn draw_services(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let wide = area.width >= 120;
    if let Some(i) = app.svc_open {
        let Some(cfg) = app.view_cfg() else { return };
        let Some(svc) = cfg.services.get(i) else { return };
        let d = lbd::reconcile::desired_service(svc);
        // What an `ftp` shorthand expands to, and the mark rules lbd writes for it.
        let expanded = lbd::fwmark::config::expand(svc);
        let mut marks: Vec<String> = lbd::fwmark::config::generated(cfg)
            .into_iter()
            .filter(|g| g.service == i)
            .map(|g| format!(" mark: {}  ({})", g.rule.nft_text(), g.origin))
            .collect();
        if lbd::fwmark::config::is_nat_ftp(svc) {
            marks.push(" ftp: the kernel's helper ip_vs_ftp rewrites the PASV replies (no marks)".into());
        }
        let rows = app.real_rows(i);
        let head = if wide {
            format!(
                "{} {} {:>6} {:>6} {:>7} {:>7} {:>6} {:>8} {:<8} {} {}",
                fit("Real server", 24),
                fit("Fwd", 6),
                "Weight",
                "Kernel",
                "ActConn",
                "InAct",
                "CPS",
                "InBPS",
                "State",
                fit("Health", 6),
                "Last check"
            )
        } else {
            format!(
                "{} {} {:>6} {:>6} {:>6} {:>6} {} {}",
                fit("Real server", 21),
                fit("Fwd", 4),
                "Weight",
                "Kernel",
                "Active",
                "InAct",
                fit("Health", 6),
                "State"
            )
        };
        // Health `...` until lbd has answered `checks`.
        let health = |r: &crate::app::RealRow| match (&r.check, &app.checks) {
            (Some(c), _) => c.health_word().to_string(),
            (None, None) if r.cfg.is_some() => "...".into(),
            _ => "-".into(),
        };
        let items: Vec<String> = rows
            .iter()
            .map(|r| {
                let w = r.weight.map(|w| w.to_string()).unwrap_or_else(|| "-".into());
                let lw = r.live_weight.map(|w| w.to_string()).unwrap_or_else(|| "-".into());
                if wide {
                    format!(
                        "{} {} {:>6} {:>6} {:>7} {:>7} {:>6} {:>8} {:<8} {} {}",
                        fit(&r.address, 24),
                        fit(&r.forward, 6),
                        w,
                        lw,
                        r.active,
                        r.inactive,
                        fmt_num(r.stats.cps),
                        fmt_num(r.stats.inbps),
                        r.state,
                        fit(&health(r), 6),
                        fit(&r.check.as_ref().map(|c| c.last_word()).unwrap_or_else(|| "-".into()), 26)
                    )
                } else {
                    format!(
                        "{} {} {:>6} {:>6} {:>6} {:>6} {} {}",
                        fit(&r.address, 21),
                        fit(&r.forward, 4),
                        w,
                        lw,
                        r.active,
                        r.inactive,
                        fit(&health(r), 6),
                        r.state
                    )
                }
            })
            .collect();
        let mut l = vec![Line::from(format!(
            "{}  sched {}  fwd {}  persistence {}",
            d.svc.key,
            svc.scheduler,
            svc.forwarding,
            expanded.persistence.as_ref().map(|p| format!("{} s", p.timeout)).unwrap_or_else(|| "none".into())
        ))];
        l.extend(marks.iter().map(|m| Line::from(m.clone())));
        l.push(Line::styled(format!(" {head}"), th.bold()));
        if items.is_empty() {
            l.push(Line::from(" no real servers: a = add one"));
        }
        // The selected real's check, below the table.
        let detail = rows.get(app.real_sel).map(|r| real_detail(r, app.checks.is_some())).unwrap_or_default();
        let inner = usize::from(area.width.saturating_sub(2)).max(1);
        let wrapped: usize = detail.iter().map(|(x, _)| x.chars().count().div_ceil(inner).max(1)).sum();
        // One spare row when a line wraps (word wrapping can take one more).
        let wrapped = if wrapped > detail.len() { wrapped + 1 } else { wrapped };
        let dh = (wrapped as u16).min(area.height.saturating_sub(8));
        let [top, bottom] = Layout::vertical([Constraint::Min(4), Constraint::Length(dh + 2)]).areas(area);
        let h = top.height.saturating_sub(3 + marks.len() as u16) as usize;
        l.extend(list_lines(&items, Some(app.real_sel), h, th));
        f.render_widget(Paragraph::new(l).block(th.block(format!(" Service {} ", svc.label()))), top);
        let detail: Vec<Line> =
            detail.into_iter().map(|(s, bad)| if bad { Line::styled(s, th.bad()) } else { Line::from(s) }).collect();
        let title = rows.get(app.real_sel).map(|r| format!(" {} ", r.address)).unwrap_or_default();
        f.render_widget(Paragraph::new(detail).wrap(Wrap { trim: false }).block(th.block(title)), bottom);
        return;
    }
    let rows = app.svc_rows();
    let head = if wide {
        format!(
            "{} {} {:>5} {:>5} {:>9} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {}",
            fit("Name", 14),
            fit("Virtual service", 26),
            "Sched",
            "Reals",
            "Up/Qu/Dr",
            "ActConn",
            "InAct",
            "CPS",
            "InPPS",
            "OutPPS",
            "InBPS",
            "OutBPS",
            "State"
        )
    } else {
        format!(
            "{} {} {:>5} {:>8} {:>6} {:>6} {:>5} {}",
            fit("Name", 12),
            fit("Virtual service", 23),
            "Sched",
            "Up/Qu/Dr",
            "Active",
            "InAct",
            "CPS",
            "State"
        )
    };
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            let uqd = format!("{}/{}/{}", r.up, r.quiesced, r.draining);
            if wide {
                format!(
                    "{} {} {:>5} {:>5} {:>9} {:>7} {:>7} {:>6} {:>7} {:>7} {:>7} {:>7} {}",
                    fit(&r.label, 14),
                    fit(&r.key, 26),
                    r.sched,
                    r.reals,
                    uqd,
                    r.active,
                    r.inactive,
                    fmt_num(r.stats.cps),
                    fmt_num(r.stats.inpps),
                    fmt_num(r.stats.outpps),
                    fmt_num(r.stats.inbps),
                    fmt_num(r.stats.outbps),
                    r.state
                )
            } else {
                format!(
                    "{} {} {:>5} {:>8} {:>6} {:>6} {:>5} {}",
                    fit(&r.label, 12),
                    fit(&r.key, 23),
                    r.sched,
                    uqd,
                    r.active,
                    r.inactive,
                    fmt_num(r.stats.cps),
                    r.state
                )
            }
        })
        .collect();
    let mut l = vec![Line::styled(format!(" {head}"), th.bold())];
    if items.is_empty() {
        l.push(Line::from(" no services: a = add one"));
    }
    let h = area.height.saturating_sub(3) as usize;
    l.extend(list_lines(&items, Some(app.selected().min(items.len().saturating_sub(1))), h, th));
    let title = if app.staged.is_some() { " Services (showing STAGED config) " } else { " Services " };
    f.render_widget(Paragraph::new(l).block(th.block(title)), area);
}

/// What the checks say about one real, in lines (with "show as bad").
fn real_detail(r: &crate::app::RealRow, asked: bool) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let Some(c) = &r.check else {
        out.push((
            if r.cfg.is_none() {
                "Not in the config: lbd drains it and removes it when idle.".into()
            } else if !asked {
                "Asking lbd for its health checks...".into()
            } else {
                "Not in the applied config yet: no check runs until it is applied.".into()
            },
            false,
        ));
        return out;
    };
    match &c.check {
        None => out.push(("Not checked: it serves while its weight is above 0.".into(), false)),
        Some(k) => {
            let mut s = format!("Check {k}: health {}", c.health_word());
            if let Some(st) = c.status.as_ref().filter(|st| st.since > 0) {
                s.push_str(&format!(" since {} UTC ({} change(s))", model::fmt_hms(st.since), st.transitions));
            }
            out.push((s, c.health.as_deref() == Some("down")));
            match &c.status {
                Some(st) if st.last_ok.is_some() => out.push((
                    format!(
                        "Last check {} UTC: {} ({} in {}); {}/{} attempts failed",
                        model::fmt_hms(st.last_at),
                        if st.last_ok == Some(true) { "ok" } else { "FAILED" },
                        if st.last_reason.is_empty() { "no reason given" } else { &st.last_reason },
                        model::fmt_latency(st.last_latency_ms),
                        st.failures,
                        st.attempts
                    ),
                    st.last_ok == Some(false),
                )),
                _ => out.push(("No check has run yet.".into(), false)),
            }
        }
    }
    match c.override_.as_deref() {
        Some("disable") => {
            out.push(("Operator override: DISABLED (out of the table whatever the check says)".into(), true))
        }
        Some("drain") => out.push(("Operator override: DRAINED (weight 0 whatever the check says)".into(), true)),
        _ => {}
    }
    out.push((
        match c.weight {
            Some(w) => format!("lbd gives it weight {w} in the kernel"),
            None => "lbd keeps it out of the kernel table".into(),
        },
        false,
    ));
    out
}

fn draw_network(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let items = app.net_items();
    let live_rows = match &app.net {
        Some(Ok(n)) => n.links.len() + n.routes.len(),
        _ => 1,
    } + usize::from(app.boot_report.is_some());
    let live_h = (live_rows as u16 + 2).clamp(4, area.height.saturating_sub(6).max(4));
    let [cfg_area, live] = Layout::vertical([Constraint::Min(5), Constraint::Length(live_h)]).areas(area);
    let c = app.view_cfg();
    let lines: Vec<String> = items
        .iter()
        .filter_map(|it| {
            let c = c?;
            Some(match *it {
                NetItem::Interface(i) => {
                    let x = &c.interfaces[i];
                    let a = x.addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                    let mut s = format!("iface {:<10} {a}", x.name);
                    if let Some(v) = &x.vlan {
                        s.push_str(&format!("  vlan {} on {}", v.id, v.parent));
                    }
                    if let Some(m) = x.mtu {
                        s.push_str(&format!("  mtu {m}"));
                    }
                    if let Some(m) = x.mac {
                        s.push_str(&format!("  mac {m}"));
                    }
                    s
                }
                NetItem::Route(i) => {
                    let r = &c.routes[i];
                    let mut s = format!("route {:<18}", r.destination.to_string());
                    if let Some(g) = r.gateway {
                        s.push_str(&format!(" via {g}"));
                    }
                    if let Some(d) = &r.interface {
                        s.push_str(&format!(" dev {d}"));
                    }
                    if let Some(m) = r.metric {
                        s.push_str(&format!(" metric {m}"));
                    }
                    s
                }
                NetItem::Vip(i) => {
                    let v = &c.vips[i];
                    format!(
                        "vip   {:<18} on {}{}",
                        v.address.to_string(),
                        v.interface,
                        v.label.as_ref().map(|l| format!(" label {l}")).unwrap_or_default()
                    )
                }
            })
        })
        .collect();
    let mut l = Vec::new();
    if lines.is_empty() {
        l.push(Line::from(" nothing configured: i = interface, r = route, v = VIP"));
    }
    let h = cfg_area.height.saturating_sub(2) as usize;
    l.extend(list_lines(&lines, Some(app.selected().min(lines.len().saturating_sub(1))), h, th));
    let title = if app.staged.is_some() { " Configured network (STAGED) " } else { " Configured network " };
    f.render_widget(Paragraph::new(l).block(th.block(title)), cfg_area);

    let mut l = Vec::new();
    match &app.net {
        Some(Ok(n)) => {
            for k in &n.links {
                let mut s = k.line();
                if !k.mac.is_empty() && k.name != "lo" {
                    s.push_str(&format!("  {}", k.mac));
                }
                if let Some(m) = k.mtu {
                    s.push_str(&format!(" mtu {m}"));
                }
                let down = !k.up || k.oper == "down" || k.oper == "lowerlayerdown";
                l.push(Line::styled(s, if down { th.warn() } else { Style::default() }));
            }
            l.extend(n.routes.iter().map(|r| Line::from(format!("route {r}"))));
        }
        Some(Err(e)) => l.push(Line::styled(format!("cannot read links: {e}"), th.bad())),
        None => l.push(Line::from("reading links...")),
    }
    match &app.boot_report {
        Some(Ok(v)) => {
            let mut out = Vec::new();
            model::json_lines(v.get("network").unwrap_or(v), 0, &mut out);
            l.push(Line::from("init boot report:"));
            l.extend(out.into_iter().map(Line::from));
        }
        Some(Err(e)) => l.push(Line::styled(format!("boot report: {e}"), th.dim())),
        None => {}
    }
    f.render_widget(Paragraph::new(l).block(th.block(" Live (from the kernel) ")), live);
}

fn draw_conns(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let rows = app.conn_rows();
    let total = app.conns.as_ref().map(Vec::len).unwrap_or(0);
    // Column widths from the content; the expiry is left out below 100 columns.
    let wide = area.width >= 100;
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|c| {
            [
                c.protocol.clone(),
                format!("{:02}:{:02}", c.expires / 60, c.expires % 60),
                c.state.clone(),
                model::hostport(&c.client.0, c.client.1),
                model::hostport(&c.virt.0, c.virt.1),
                model::hostport(&c.dest.0, c.dest.1),
            ]
        })
        .collect();
    let head = ["Pro", "Expire", "State", "Source", "Virtual", "Destination"];
    let mut wid: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (i, x) in c.iter().enumerate() {
            wid[i] = wid[i].max(x.chars().count());
        }
    }
    let fmt_row = |c: [&str; 6]| {
        let mut parts = Vec::new();
        for (i, x) in c.iter().enumerate() {
            if i == 1 && !wide {
                continue;
            }
            parts.push(if i == 5 { x.to_string() } else { fit(x, wid[i]) });
        }
        parts.join(" ")
    };
    let items: Vec<String> = cells.iter().map(|c| fmt_row([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]])).collect();
    let mut l = vec![
        Line::from(vec![
            Span::raw("Filter: "),
            Span::styled(format!("{}{}", app.conn_filter, if app.filter_edit { "_" } else { "" }), th.bold()),
            Span::raw(format!("   ({} of {total} shown; / to filter)", rows.len())),
        ]),
        Line::styled(format!(" {}", fmt_row(head)), th.bold()),
    ];
    if let Err(e) = &app.conns {
        l.push(Line::styled(format!("cannot read connections: {e}"), th.bad()));
    } else if items.is_empty() {
        l.push(Line::from(" no connections"));
    }
    let h = area.height.saturating_sub(4) as usize;
    l.extend(list_lines(&items, (!items.is_empty()).then(|| app.selected().min(items.len() - 1)), h, th));
    f.render_widget(Paragraph::new(l).block(th.block(" Connections (ipvsadm -Lnc) ")), area);
}

fn draw_logs(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let lines = app.log_lines();
    let level = ["error", "warn", "info", "debug", "trace"][usize::from(app.log_level.min(4))];
    let src = match app.log_source {
        LogSource::Lbd => "lbd",
        LogSource::Init => "init",
        LogSource::Both => "init+lbd",
    };
    let mut l = vec![Line::from(vec![
        Span::raw(format!("Source {src}  Level >= {level}  Filter: ")),
        Span::styled(format!("{}{}", app.log_filter, if app.filter_edit { "_" } else { "" }), th.bold()),
    ])];
    if matches!(app.log_source, LogSource::Init | LogSource::Both)
        && let Err(e) = &app.init_logs
    {
        l.push(Line::styled(format!("init logs: {e}"), th.warn()));
    }
    let h = area.height.saturating_sub(2 + l.len() as u16) as usize;
    let end = lines.len().saturating_sub(app.scroll.min(lines.len()));
    let start = end.saturating_sub(h);
    for e in &lines[start..end] {
        let st = match model::level_rank(&e.level) {
            0 => th.bad(),
            1 => th.warn(),
            3 | 4 => th.dim(),
            _ => Style::default(),
        };
        l.push(Line::styled(
            format!("{:<4} {:>8} {:<5} {}", e.source, fmt_ms(e.t_ms), e.level.to_uppercase(), e.msg),
            st,
        ));
    }
    let title = if app.scroll > 0 { format!(" Logs (scrolled back {}) ", app.scroll) } else { " Logs ".into() };
    f.render_widget(Paragraph::new(l).block(th.block(title)), area);
}

fn draw_system(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    match app.sys_view {
        SysView::Import => draw_import(app, th, f, area),
        SysView::Config => {
            let text = app.applied_text.clone().unwrap_or_else(|| "(no config received)".into());
            let h = area.height.saturating_sub(2) as usize;
            let lines: Vec<Line> = text.lines().skip(app.scroll).take(h).map(|s| Line::from(s.to_string())).collect();
            let n = text.lines().count();
            let title = format!(" Applied config, lines {}-{} of {n} ", app.scroll + 1, (app.scroll + h).min(n));
            f.render_widget(Paragraph::new(lines).block(th.block(title)), area);
        }
        SysView::History => {
            let mut items = Vec::new();
            for v in &app.history {
                items.push(format!("{:>2} {:>6}  {}", v.n, v.size, fmt_epoch(v.mtime)));
            }
            let mut l = vec![Line::styled(" #  bytes  saved (UTC)", th.bold())];
            if items.is_empty() {
                l.push(Line::from(" no earlier versions kept"));
            }
            let h = area.height.saturating_sub(4) as usize;
            l.extend(list_lines(&items, (!items.is_empty()).then(|| app.hist_sel.min(items.len() - 1)), h, th));
            l.push(Line::styled(" Enter = show that version; from there s = stage it to restore", th.dim()));
            f.render_widget(Paragraph::new(l).block(th.block(" Config history (1 = previous) ")), area);
        }
        SysView::Version => {
            let (n, text) = app.old_version.clone().unwrap_or((0, String::new()));
            let h = area.height.saturating_sub(2) as usize;
            let lines: Vec<Line> = text.lines().skip(app.scroll).take(h).map(|s| Line::from(s.to_string())).collect();
            let title = format!(" Config version {n} (s = stage it to restore, password kept; Esc back) ");
            f.render_widget(Paragraph::new(lines).block(th.block(title)), area);
        }
        SysView::Menu => {
            let [menu, info] = Layout::horizontal([Constraint::Length(36), Constraint::Min(10)]).areas(area);
            let items: Vec<String> = SYS_MENU.iter().map(|(k, s)| format!("{k}  {s}")).collect();
            let h = menu.height.saturating_sub(2) as usize;
            f.render_widget(
                Paragraph::new(list_lines(&items, Some(app.selected().min(items.len() - 1)), h, th))
                    .block(th.block(" System ")),
                menu,
            );
            let mut l = Vec::new();
            if let Some(c) = &app.applied {
                l.push(Line::from(format!("Host name: {}", c.system.hostname)));
                l.push(Line::from(format!("Consoles: {} ({})", c.system.consoles.join(", "), c.system.console_size)));
            }
            l.push(Line::from("Supervised by init:"));
            match &app.children {
                Some(Ok(v)) => {
                    let mut out = Vec::new();
                    model::json_lines(v, 1, &mut out);
                    l.extend(out.into_iter().map(Line::from));
                }
                Some(Err(e)) => l.push(Line::styled(format!("  {e}"), th.warn())),
                None => l.push(Line::from("  ...")),
            }
            f.render_widget(Paragraph::new(l).wrap(Wrap { trim: false }).block(th.block(" Box ")), info);
        }
    }
}

/// The keepalived.conf or ipvsadm paste: what arrived so far, then lbd's report.
fn draw_import(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let Some(p) = &app.paste else { return };
    let kib = MAX_PASTE / 1024;
    let Some(r) = &p.result else {
        let mut l = vec![
            Line::styled("Paste a keepalived.conf or ipvsadm rules now, then press Ctrl-D.", th.bold()),
            Line::from(format!(
                "ipvsadm rules: `ipvsadm -S` output, or a script or terminal session of ipvsadm commands. \
                 lbd tells which it is, converts it and shows a report; nothing is applied. Esc cancels. \
                 At most {kib} KiB. `include` cannot be followed from a paste: paste the included text in its place."
            )),
        ];
        let lines = p.lines();
        if p.converting {
            l.push(Line::styled(format!("Sent {} bytes ({lines} lines): lbd converts it...", p.text.len()), th.bold()));
        } else if p.dropped > 0 {
            l.push(Line::styled(
                format!(
                    "TOO LARGE: {} bytes beyond {kib} KiB were dropped. Esc, then paste a smaller file.",
                    p.dropped
                ),
                th.bad(),
            ));
        } else {
            l.push(Line::from(format!("Received {} bytes, {lines} lines.", p.text.len())));
        }
        // Rows the wrapped text takes (one spare for word wrapping).
        let inner = usize::from(area.width.saturating_sub(2)).max(1);
        let rows: usize = l.iter().map(|x| x.width().div_ceil(inner).max(1)).sum::<usize>() + 1;
        let hh = (rows as u16).min(area.height.saturating_sub(3));
        let head = Paragraph::new(l).wrap(Wrap { trim: false });
        let [top, tail] = Layout::vertical([Constraint::Length(hh + 2), Constraint::Min(1)]).areas(area);
        f.render_widget(head.block(th.block(" Import keepalived.conf or ipvsadm rules ")), top);
        // The end of what arrived, so the operator sees the paste land.
        let h = tail.height.saturating_sub(2) as usize;
        let all: Vec<&str> = p.text.lines().collect();
        let first = all.len().saturating_sub(h);
        let shown: Vec<Line> = all[first..]
            .iter()
            .enumerate()
            .map(|(i, s)| Line::from(format!("{:>5} {}", first + i + 1, s.replace('\t', "  "))))
            .collect();
        f.render_widget(Paragraph::new(shown).block(th.block(" Received (last lines) ")), tail);
        return;
    };
    let mut l = vec![Line::from(format!("Read as {}.", p.what()))];
    if let Some(e) = &r.failure {
        l.push(Line::styled(format!("lbd did not convert it: {e}"), th.bad()));
    } else {
        let st = if r.converted { th.good() } else { th.bad() };
        l.push(Line::styled(r.summary.clone(), st));
        if !r.converted {
            l.push(Line::styled("Nothing converted: fix the lines named below and paste again (p).", th.bad()));
        } else if !r.merge_errors.is_empty() {
            l.push(Line::styled("It converted, but lbd refuses it together with this box's config:", th.bad()));
            l.extend(r.merge_errors.iter().map(|e| Line::styled(format!("  {e}"), th.bad())));
            l.push(Line::from("Nothing can be staged: fix the file (or this box's config) and paste again."));
        } else if r.merged.is_some() {
            l.push(Line::styled("s stages it; screen 7 then shows the diff and applies with confirm:", th.bold()));
            l.extend(r.replaced.iter().map(|x| Line::from(format!("  * {x}"))));
            l.push(Line::from("  Kept from this box: interfaces, routes, static VIPs, consoles, password."));
        }
    }
    let ni = r.report.iter().filter(|e| e.kind == "not imported").count();
    if ni > 0 {
        l.push(Line::styled(format!("{ni} thing(s) NOT imported: the box behaves differently there:"), th.warn()));
    }
    for e in &r.report {
        let st = match e.kind.as_str() {
            "error" => th.bad(),
            "not imported" => th.warn(),
            _ => Style::default(),
        };
        let at = if e.line > 0 { format!("line {}", e.line) } else { "input".into() };
        l.push(Line::styled(format!("{at}: {}: {}: {}", e.kind, e.what, e.message), st));
    }
    let title = if r.converted && r.merged.is_some() {
        format!(" Import {}: report (s = stage) ", p.what())
    } else {
        format!(" Import {}: report ", p.what())
    };
    f.render_widget(
        Paragraph::new(l)
            .wrap(Wrap { trim: false })
            .scroll((app.scroll.min(u16::MAX as usize) as u16, 0))
            .block(th.block(title)),
        area,
    );
}

/// `2026-11-22 15:32` from seconds since the epoch (UTC).
pub fn fmt_epoch(t: u64) -> String {
    let days = (t / 86400) as i64;
    let (h, m) = ((t / 3600) % 24, (t / 60) % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

fn draw_changes(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let mut l: Vec<Line> = Vec::new();
    match (&app.apply, app.confirm_left()) {
        (ApplyState::Applying { .. }, _) => l.push(Line::styled("Applying...", th.bold())),
        (ApplyState::Confirming, _) => l.push(Line::styled("Confirming...", th.bold())),
        (ApplyState::RollingBack, _) => l.push(Line::styled("Rolling back...", th.bold())),
        (ApplyState::Checking { .. }, _) => l.push(Line::styled("Checking what lbd did...", th.bold())),
        (_, Some(left)) => {
            l.push(Line::styled(
                format!("APPLIED - CONFIRM WITHIN {left} s, or lbd rolls back by itself."),
                th.bad().add_modifier(Modifier::REVERSED),
            ));
            l.push(Line::from("Check that the box still works (e.g. from another window), then:"));
            l.push(Line::styled("  c = Confirm (keep it)     r = Roll back now", th.bold()));
        }
        _ => {}
    }
    if let Some((m, bad)) = &app.outcome {
        l.push(Line::styled(m.clone(), if *bad { th.bad() } else { th.good() }));
    }
    if app.staged.is_none() {
        if l.is_empty() {
            l.push(Line::from("No staged changes. Edits on the Services, Network and System screens"));
            l.push(Line::from(format!(
                "are staged here; apply them together, then confirm within {} s.",
                app.opts.confirm_within_s
            )));
        }
        f.render_widget(Paragraph::new(l).wrap(Wrap { trim: false }).block(th.block(" Changes ")), area);
        return;
    }
    l.push(Line::styled(format!("{} staged change(s):", app.notes.len()), th.bold()));
    for n in &app.notes {
        l.push(Line::from(format!("  * {n}")));
    }
    l.push(Line::styled("Note: applying rewrites the config file; comments in it are lost.", th.dim()));
    let mut rest: Vec<Line> = Vec::new();
    match &app.review {
        None => rest.push(Line::from("Validating with lbd...")),
        Some(r) => {
            match &r.changes {
                Ok(ch) => {
                    rest.push(Line::styled(format!("lbd: valid; {} kernel change(s):", ch.len()), th.good()));
                    rest.extend(ch.iter().map(|c| Line::from(format!("  {c}"))));
                }
                Err(errs) => {
                    rest.push(Line::styled("lbd REFUSES this config (nothing applied):", th.bad()));
                    rest.extend(errs.iter().map(|e| Line::styled(format!("  {e}"), th.bad())));
                }
            }
            rest.push(Line::styled("Config file diff:", th.bold()));
            for d in &r.diff {
                let st = match d {
                    diff::Line::Add(_) => th.good(),
                    diff::Line::Del(_) => th.bad(),
                    _ => th.dim(),
                };
                rest.push(Line::styled(d.text(), st));
            }
        }
    }
    l.extend(rest.into_iter().skip(app.scroll));
    f.render_widget(Paragraph::new(Text::from(l)).block(th.block(" Changes: review and apply ")), area);
}

fn vrrp_style(th: &Th, state: &str) -> Style {
    match state {
        "master" => th.good().add_modifier(Modifier::BOLD),
        "backup" => Style::default(),
        _ => th.bad(),
    }
}

fn draw_vrrp(app: &App, th: &Th, f: &mut Frame, area: Rect) {
    let Some(v) = &app.vrrp else {
        f.render_widget(Paragraph::new("asking lbd...").block(th.block(" VRRP ")), area);
        return;
    };
    if !v.running || v.instances.is_empty() {
        let l = vec![
            Line::from("VRRP is not configured on this box."),
            Line::from("Add [[vrrp.instances]] to the config (System > config) to share VIPs with a peer."),
        ];
        f.render_widget(Paragraph::new(l).wrap(Wrap { trim: true }).block(th.block(" VRRP ")), area);
        return;
    }
    let wide = area.width >= 120;
    let sel = app.selected().min(v.instances.len() - 1);
    let list_h = (v.instances.len() as u16 + 3).min(area.height / 2).max(4);
    let [top, bottom] = Layout::vertical([Constraint::Length(list_h), Constraint::Min(4)]).areas(area);
    let row = |c: [&str; 6]| {
        if wide {
            format!("{} {} {:>4} {} {:>7} {}", fit(c[0], 16), fit(c[1], 10), c[2], fit(c[3], 14), c[4], c[5])
        } else {
            format!("{} {} {:>4} {} {:>7} {}", fit(c[0], 10), fit(c[1], 7), c[2], fit(c[3], 12), c[4], c[5])
        }
    };
    let items: Vec<String> = v
        .instances
        .iter()
        .map(|i| {
            let state = format!("{}{}", i.state.to_uppercase(), if i.maintenance { " MAINT" } else { "" });
            let prio = if i.effective_priority == i.priority {
                i.priority.to_string()
            } else {
                format!("{}/{}", i.effective_priority, i.priority)
            };
            row([&i.name, &i.interface, &i.vrid.to_string(), &state, &prio, &i.master_label()])
        })
        .collect();
    let mut l =
        vec![Line::styled(format!(" {}", row(["Instance", "If", "VRID", "State", "Prio", "Master"])), th.bold())];
    let h = top.height.saturating_sub(3) as usize;
    l.extend(list_lines(&items, Some(sel), h, th));
    f.render_widget(Paragraph::new(l).block(th.block(" VRRP instances ")), top);

    let i = &v.instances[sel];
    let mut l = vec![
        Line::from(vec![
            Span::raw("State "),
            Span::styled(i.state.to_uppercase(), vrrp_style(th, &i.state)),
            Span::raw(match i.master_since_ms_ago {
                Some(ms) if i.state == "master" => format!(" for {}", model::fmt_uptime(ms / 1000)),
                _ => String::new(),
            }),
            Span::raw(format!("   v{}  advert {} ms", i.version, i.advert_interval_ms)),
            Span::styled(if i.maintenance { "   MAINTENANCE (m to end)" } else { "" }, th.warn()),
        ]),
        Line::from(format!("VIPs {}", i.vips.join(", "))),
        Line::from(format!(
            "Adverts rx {} tx {}   became master {}x   dropped {}{}",
            i.rx_adverts,
            i.tx_adverts,
            i.became_master,
            i.drops.values().sum::<u64>(),
            if let Some(s) = &v.sync_daemon { format!("   conn sync: {}", s.role) } else { String::new() }
        )),
    ];
    if let Some(e) = &i.last_error {
        l.push(Line::styled(format!("Last error: {e}"), th.bad()));
    }
    l.push(Line::styled("History (newest first)", th.bold()));
    for t in i.history.iter().rev() {
        l.push(Line::from(format!("{:>9} ago  {} -> {}  {}", fmt_ms(t.ms_ago), t.from, t.to, t.reason)));
    }
    f.render_widget(Paragraph::new(l).block(th.block(format!(" {} ", i.name))), bottom);
}

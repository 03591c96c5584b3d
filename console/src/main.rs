//! `console`: the lvsbox serial-console TUI. init runs it on each configured
//! tty (`console --tty ttyS0 --size 80x24`) and restarts it when it exits.
//!
//! Everything here is IO: the tty (size, raw mode, signals), the input and
//! effect threads, the clock. The behaviour lives in `console::app`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use console::app::{App, Effect, Event, Options};
use console::exec::Executor;
use crossterm::event::{Event as CEvent, KeyEventKind};
use lbd::config::TermSize;
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const USAGE: &str = "usage: console [--tty NAME] [--size COLSxROWS] [--socket PATH] [--init-socket PATH]
               [--config FILE] [--idle-min N]";

struct Args {
    tty: String,
    size: Option<TermSize>,
    socket: PathBuf,
    init_socket: PathBuf,
    config: PathBuf,
    idle_min: u64,
    iterations: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        tty: String::new(),
        size: None,
        socket: lbd::paths::CONTROL_SOCKET.into(),
        init_socket: lbd::paths::INIT_SOCKET.into(),
        config: lbd::paths::CONFIG_FILE.into(),
        idle_min: 10,
        iterations: console::password::DEFAULT_ITERATIONS,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--tty" => a.tty = val()?.trim_start_matches("/dev/").to_string(),
            "--size" => a.size = Some(val()?.parse()?),
            "--socket" => a.socket = val()?.into(),
            "--init-socket" => a.init_socket = val()?.into(),
            "--config" => a.config = val()?.into(),
            "--idle-min" => a.idle_min = val()?.parse().map_err(|_| "--idle-min takes minutes".to_string())?,
            // For development on slow debug builds only; never below the floor.
            "--hash-iterations" => {
                a.iterations = val()?.parse::<u32>().map_err(|_| "--hash-iterations takes a number".to_string())?;
                a.iterations = a.iterations.max(console::password::MIN_ITERATIONS);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Makes the tty report a usable size: a serial line says 0×0 until told.
/// Returns the area to draw in and whether it is fixed (no resize following).
fn setup_size(want: Option<TermSize>) -> (Rect, bool) {
    let stdin = std::io::stdin();
    let cur = rustix::termios::tcgetwinsize(&stdin).ok();
    let (cols, rows) = cur.map(|w| (w.ws_col, w.ws_row)).unwrap_or((0, 0));
    let def = want.unwrap_or_default();
    if cols == 0 || rows == 0 {
        let ws = rustix::termios::Winsize { ws_row: def.rows, ws_col: def.cols, ws_xpixel: 0, ws_ypixel: 0 };
        // Best effort: without it crossterm would still see 0x0, but the
        // fixed viewport below does not ask the tty.
        let _ = rustix::termios::tcsetwinsize(&stdin, ws);
        return (Rect::new(0, 0, def.cols, def.rows), true);
    }
    match want {
        // Told a size: draw at it, but never past what the tty says it has.
        Some(s) => (Rect::new(0, 0, s.cols.min(cols), s.rows.min(rows)), true),
        None => (Rect::new(0, 0, cols, rows), false),
    }
}

/// `/run/console-ttyS0.failures` (tmpfs: a reboot forgets it); none when
/// /run is not writable (development).
fn failures_file(tty: &str) -> Option<PathBuf> {
    let run = std::path::Path::new("/run");
    let name = if tty.is_empty() { "console.failures".to_string() } else { format!("console-{tty}.failures") };
    let ok = std::fs::metadata(run).is_ok_and(|m| m.is_dir())
        && rustix::fs::access(run, rustix::fs::Access::WRITE_OK).is_ok();
    ok.then(|| run.join(name))
}

enum Msg {
    App(Event),
    Resize(u16, u16),
    InputGone(String),
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("console: {e}");
            return ExitCode::from(2);
        }
    };
    if !std::io::stdin().is_terminal() {
        eprintln!("console: stdin is not a terminal");
        return ExitCode::from(2);
    }
    // Ctrl-C/Ctrl-\/Ctrl-Z never kill or stop the console. Raw mode already
    // turns them into keys; a handler (not SIG_DFL) also covers kill -INT.
    let caught = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT, signal_hook::consts::SIGTSTP] {
        if let Err(e) = signal_hook::flag::register(sig, caught.clone()) {
            eprintln!("console: cannot handle signal {sig}: {e}");
        }
    }
    let (area, fixed) = setup_size(args.size);
    let term = std::env::var("TERM").unwrap_or_default();
    let (ascii, color) = Options::for_term(&term);
    let opts =
        Options { idle_logout_ms: args.idle_min * 60_000, tty: args.tty.clone(), ascii, color, ..Options::default() };

    if let Err(e) = crossterm::terminal::enable_raw_mode() {
        eprintln!("console: cannot set raw mode: {e}");
        return ExitCode::FAILURE;
    }
    std::panic::set_hook(Box::new(|info| {
        let _ = crossterm::terminal::disable_raw_mode();
        let _ = std::io::stdout().write_all(b"\x1b[?25h\r\n");
        eprintln!("console crashed: {info}\r");
    }));
    let code = run(args, area, fixed, opts);
    let _ = crossterm::terminal::disable_raw_mode();
    let _ = std::io::stdout().write_all(b"\x1b[?25h\x1b[2J\x1b[H");
    let _ = std::io::stdout().flush();
    code
}

type Term = Terminal<CrosstermBackend<std::io::Stdout>>;

/// A terminal drawing into `area`, after wiping the screen. Used at start,
/// for Ctrl-L and on resize instead of `Terminal::clear`/`resize`, which ask
/// the terminal for the cursor position (ESC[6n) and stall for seconds on a
/// serial peer that does not answer.
fn fresh_terminal(area: Rect) -> std::io::Result<Term> {
    let mut out = std::io::stdout();
    out.write_all(b"\x1b[0m\x1b[H\x1b[2J")?;
    out.flush()?;
    let mut t =
        Terminal::with_options(CrosstermBackend::new(out), TerminalOptions { viewport: Viewport::Fixed(area) })?;
    t.hide_cursor()?;
    Ok(t)
}

fn run(args: Args, mut area: Rect, fixed: bool, opts: Options) -> ExitCode {
    let mut terminal = match fresh_terminal(area) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("console: {e}");
            return ExitCode::FAILURE;
        }
    };

    let (tx, rx) = mpsc::channel::<Msg>();
    // Input: blocking reads on the tty.
    let itx = tx.clone();
    std::thread::spawn(move || {
        loop {
            let m = match crossterm::event::read() {
                Ok(CEvent::Key(k)) if k.kind != KeyEventKind::Release => Msg::App(Event::Key(k)),
                Ok(CEvent::Resize(w, h)) => Msg::Resize(w, h),
                Ok(_) => continue,
                Err(e) => Msg::InputGone(e.to_string()),
            };
            let gone = matches!(m, Msg::InputGone(_));
            if itx.send(m).is_err() || gone {
                return;
            }
        }
    });
    // Effects: one worker, in order (so an apply is never overtaken).
    let (etx, erx) = mpsc::channel::<Effect>();
    let mut exec = Executor::new(&args.socket, &args.init_socket, &args.config);
    exec.iterations = args.iterations;
    exec.failures_file = failures_file(&args.tty);
    let wtx = tx.clone();
    std::thread::spawn(move || {
        while let Ok(e) = erx.recv() {
            if let Some(ev) = exec.run(e)
                && wtx.send(Msg::App(ev)).is_err()
            {
                return;
            }
        }
    });

    let start = Instant::now();
    let mut app = App::new(opts);
    let mut last_draw = 0u64;
    loop {
        let first = rx.recv_timeout(Duration::from_millis(250));
        let now = start.elapsed().as_millis() as u64;
        let mut effects = app.handle(Event::Tick(now));
        let mut batch = Vec::new();
        match first {
            Ok(m) => batch.push(m),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return ExitCode::FAILURE,
        }
        batch.extend(rx.try_iter());
        // Redraw after input or answers; otherwise once a second for the
        // clocks. Even an unchanged frame costs ~20 bytes of escapes.
        // A paste arrives as a burst of keys: repaint it 4 times a second,
        // not after every key (the repaint shares the 115200-baud line).
        let due = if app.pasting() {
            now.saturating_sub(last_draw) >= 250
        } else {
            !batch.is_empty() || now.saturating_sub(last_draw) >= 1000
        };
        let mut clear = false;
        for m in batch {
            match m {
                Msg::App(ev) => effects.extend(app.handle(ev)),
                Msg::Resize(w, h) if !fixed && w > 0 && h > 0 => {
                    area = Rect::new(0, 0, w, h);
                    clear = true;
                }
                Msg::Resize(..) => {}
                Msg::InputGone(e) => {
                    // The line hung up: exit, init starts a fresh console.
                    eprintln!("console: tty input closed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        for e in effects {
            match e {
                Effect::ClearScreen => clear = true,
                other => {
                    if etx.send(other).is_err() {
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        if clear {
            match fresh_terminal(area) {
                Ok(t) => terminal = t,
                Err(e) => {
                    eprintln!("console: cannot repaint: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        if !(due || clear) {
            continue;
        }
        last_draw = now;
        if let Err(e) = terminal.draw(|f| console::ui::draw(&app, f)) {
            eprintln!("console: cannot draw: {e}");
            return ExitCode::FAILURE;
        }
    }
}

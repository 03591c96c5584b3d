//! `lbd`: the daemon (`lbd run`), config check (`lbd check FILE`) and the
//! control client (`lbd ctl ...`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use lbd::ctl::proto::{Command, Request, Response};
use lbd::paths;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("run") => run(),
        Some("check") => check(&args[1..]),
        Some("ctl") => ctl(&args[1..]),
        Some("--version") | Some("version") => {
            println!("lbd {}", paths::VERSION);
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("lbd: unknown command `{other}`\nusage: lbd [run] | lbd check FILE | lbd ctl COMMAND");
            ExitCode::from(2)
        }
    }
}

fn check(args: &[String]) -> ExitCode {
    let Some(file) = args.first() else {
        eprintln!("usage: lbd check FILE");
        return ExitCode::from(2);
    };
    match lbd::config::parse_file(Path::new(file)) {
        Ok(c) => {
            println!("{file}: OK ({} services, {} interfaces)", c.services.len(), c.interfaces.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("{file}: {} error(s); nothing applied", errors.len());
            ExitCode::FAILURE
        }
    }
}

fn ctl(args: &[String]) -> ExitCode {
    let cmd = match args.first().map(String::as_str) {
        Some("ping") | None => Command::Ping,
        Some(other) => {
            eprintln!("lbd ctl: unknown command `{other}`");
            return ExitCode::from(2);
        }
    };
    let sock = std::env::var("LBD_SOCKET").unwrap_or_else(|_| paths::CONTROL_SOCKET.into());
    match lbd::ctl::client::Client::connect(Path::new(&sock), Duration::from_secs(30)).and_then(|mut c| c.call(cmd)) {
        Ok(r) if r.ok => {
            println!("{}", r.data.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("lbd: {}", r.error.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lbd ctl: {sock}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(serve()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let sock = std::env::var("LBD_SOCKET").unwrap_or_else(|_| paths::CONTROL_SOCKET.into());
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let resp = match serde_json::from_str::<Request>(&line) {
                    Ok(req) => match req.cmd {
                        Command::Ping => Response::ok(req.id, "pong".into()),
                    },
                    Err(e) => Response::err(0, format!("bad request: {e}")),
                };
                let mut out = serde_json::to_string(&resp).unwrap_or_default();
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

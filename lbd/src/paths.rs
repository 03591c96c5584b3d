//! Well-known paths and names on the appliance. One place, so init, lbd,
//! console and the test harness agree.

/// lbd's control socket (newline-delimited JSON, mode 0600).
pub const CONTROL_SOCKET: &str = "/run/lbd.sock";
/// init's control socket: its log ring, supervised processes, reboot/power-off.
pub const INIT_SOCKET: &str = "/run/init.sock";
/// Where the persistent config partition is mounted.
pub const CONFIG_MOUNT: &str = "/cfg";
/// The active config file.
pub const CONFIG_FILE: &str = "/cfg/lvsbox.toml";
/// Previous versions of the config (`lvsbox.toml.1` is the newest).
pub const CONFIG_HISTORY_DIR: &str = "/cfg/history";
/// How many previous config versions are kept.
pub const CONFIG_HISTORY_KEEP: usize = 10;
/// GPT partition name of the config partition.
pub const CONFIG_PARTLABEL: &str = "lvsbox-config";
/// What init prints once lbd answers on its control socket.
pub const READY_LINE: &str = "lbd ready";
/// The environment variable in which init passes `lbd run` the write end of
/// a pipe (its descriptor number): lbd writes one line to it and closes it
/// once its control socket is bound, so init need not poll with pings.
pub const READY_FD_ENV: &str = "LBD_READY_FD";
/// Starts the NOTICE line init logs once the modules it left for after
/// `lbd ready` are loaded (`modules after ready: N loaded in M ms, F failed`).
pub const LATE_MODULES_LINE: &str = "modules after ready";
/// Product name, printed in the banner `lvsbox <version>`.
pub const PRODUCT: &str = "lvsbox";
/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

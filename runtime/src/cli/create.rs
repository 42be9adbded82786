use std::path::PathBuf;

use berth_runtime::exeseal;
use berth_runtime::CreateOptions;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// Bundle directory holding config.json.
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init process's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (terminal containers).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Move the rootfs over / and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: this runtime never creates a session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds beyond stdio (3, 4, ...) to the container process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
}

impl Args {
    pub fn options(&self, g: &Global) -> CreateOptions {
        CreateOptions {
            id: self.id.clone(),
            bundle: self.bundle.clone(),
            root: g.root.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            listen_fds: berth_runtime::process::fds::activation_fds(),
            ..Default::default()
        }
    }
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    exeseal::ensure_sealed()?;
    let c = berth_runtime::container::create(&a.options(g))?;
    super::log::debug(&format!(
        "container {:?} created, init pid {}",
        c.id(),
        c.pid()
    ));
    Ok(())
}

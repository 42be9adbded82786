use std::process::Command;

use berth_runtime::Container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    pub id: String,
    /// table (runs ps(1)) or json (a list of pids).
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Arguments for ps(1); `-ef` when none are given.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let pids = Container::load(&g.root, &a.id)?.pids()?;
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    anyhow::ensure!(
        a.format == "table",
        "invalid format {:?}: use table or json",
        a.format
    );
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args
    };
    let out = Command::new("ps").args(&args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "ps {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow::anyhow!("ps output has no PID column"))?;
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}

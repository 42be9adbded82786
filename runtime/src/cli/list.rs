use berth_runtime::container;

use super::Global;

#[derive(clap::Args)]
pub struct Args {
    /// table or json.
    #[arg(short, long, default_value = "table")]
    pub format: String,
    /// Print only the ids.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: Args, g: &Global) -> anyhow::Result<()> {
    let states: Vec<_> = container::list(&g.root)?
        .iter()
        .map(|c| c.oci_state())
        .collect();
    if a.quiet {
        states.iter().for_each(|s| println!("{}", s.id));
        return Ok(());
    }
    match a.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&states)?),
        "table" => {
            let mut rows =
                vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
        other => anyhow::bail!("invalid format {other:?}: use table or json"),
    }
    Ok(())
}

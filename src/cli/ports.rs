//! `aria-bridge ports`: what `[midi] input_port`, `clock_port` and `output_port` can name.

use std::process::ExitCode;

use aria_bridge::midi::ports::{self, PortList};

/// Flags of `ports`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object {"backend", "inputs", "outputs"} instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ports`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let list = ports::list_ports()?;
    if args.json {
        let v = serde_json::json!({
            "backend": ports::BACKEND,
            "inputs": list.inputs,
            "outputs": list.outputs,
        });
        println!("{v}");
    } else {
        print!("{}", render(&list));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(list: &PortList) -> String {
    let mut s = format!("MIDI backend: {}\n", ports::BACKEND);
    let section = |s: &mut String, title: &str, names: &[String]| {
        s.push_str(title);
        s.push('\n');
        if names.is_empty() {
            s.push_str("  (none)\n");
        }
        for n in names {
            s.push_str(&format!("  {n}\n"));
        }
    };
    section(
        &mut s,
        "inputs (we read; name one in midi.input_port / midi.clock_port, any part, any case):",
        &list.inputs,
    );
    section(
        &mut s,
        "outputs (we write; name one in midi.output_port):",
        &list.outputs,
    );
    if cfg!(not(windows)) {
        s.push_str(&format!(
            "unset names create the virtual ports \"{}\" and \"{}\"\n",
            ports::IN_PORT,
            ports::OUT_PORT
        ));
    }
    s
}

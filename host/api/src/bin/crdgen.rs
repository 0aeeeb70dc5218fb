//! `crdgen`: writes danm's CRDs to `deploy/crds/` (or `--check`s that the checked-in files match the types).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut check = false;
    let mut dir = PathBuf::from("deploy/crds");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--dir" => match args.next() {
                Some(d) => dir = PathBuf::from(d),
                None => {
                    eprintln!("crdgen: --dir needs a directory");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("crdgen: unknown argument {other}; usage: crdgen [--check] [--dir deploy/crds]");
                return ExitCode::from(2);
            }
        }
    }
    let mut drift = Vec::new();
    for (file, crd) in danm_api::crd::all() {
        let path = dir.join(file);
        let yaml = danm_api::crd::to_yaml(&crd);
        if check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                drift.push(path.display().to_string());
            }
        } else if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, yaml)) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if !drift.is_empty() {
        eprintln!(
            "crdgen: these CRDs differ from the Rust types; run `make crds`: {}",
            drift.join(", ")
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

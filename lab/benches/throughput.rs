//! Raw throughput of the lab API server (baseline for the IPAM benchmark): `cargo bench -p danm-lab`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ops = std::env::var("DANM_LAB_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    print!("{}", danm_lab::bench::run(ops, 4).await?);
    Ok(())
}

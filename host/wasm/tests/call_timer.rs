//! The call timers of short-lived processes (`EpochClock::CallTimer`): a spinning plugin is still stopped at its
//! deadline, with no ticker thread in the process, also on a thread that blocks the timer's signal and while two calls
//! spin at once; the host stays healthy; a second runtime in the same process falls back to a ticker thread.
//!
//! One test function: the signal belongs to the first runtime of the process that asks for it, so the order of
//! what follows matters (this file is a test binary of its own).

mod common;

use std::time::{Duration, Instant};

use danm_wasm::{EpochClock, PluginError, PluginSet, RuntimeConfig};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

use common::{config, dir_with, real, request, shared_cache, still_healthy, test_plugin};

/// Names of this process's threads (besides the harness's and the test's, wasmtime may have compilation threads).
fn threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

fn tickers() -> usize {
    threads().iter().filter(|t| *t == "danm-wasm-epoch").count()
}

/// Waits (up to 2 s) until the process has `n` epoch ticker threads: a thread names itself only after it starts,
/// and leaves `/proc` only after whoever joined it has returned.
fn expect_tickers(n: usize, why: &str) {
    let t = Instant::now();
    while tickers() != n && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(tickers(), n, "{why}: {:?}", threads());
}

/// Translates with the spinning plugin and checks it was stopped at its 500 ms deadline (10 ms ticks), with slack
/// for a busy machine.
fn stopped_at_deadline(set: &PluginSet) {
    let t = Instant::now();
    let err = set.translate(&request("spin")).unwrap_err();
    let took = t.elapsed();
    assert!(matches!(err, PluginError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("deadline of 500ms"), "{err}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "stopped after {took:?}"
    );
}

#[test]
fn call_timers_bound_every_call_without_a_ticker_thread() {
    let dir = dir_with(&[real("macvlan"), test_plugin("spin")]);
    let timed = || RuntimeConfig {
        epoch_clock: EpochClock::CallTimer,
        // A backstop, so that a broken timer fails this test (out of fuel after seconds) instead of hanging it.
        fuel: Some(50_000_000_000),
        ..config(dir.path(), Some(shared_cache()))
    };
    let set = PluginSet::load(timed()).unwrap();
    assert!(set.errors().is_empty(), "{:?}", set.errors());
    assert_eq!(set.epoch_clock(), EpochClock::CallTimer);
    expect_tickers(0, "no ticker thread");

    stopped_at_deadline(&set);
    still_healthy(&set);
    assert_eq!(set.epoch_clock(), EpochClock::CallTimer);
    expect_tickers(0, "no ticker was needed");

    // A caller that blocks the signal: unblocked for the call, blocked again afterwards.
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut urg = SigSet::empty();
            urg.add(Signal::SIGURG);
            pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&urg), None).unwrap();
            stopped_at_deadline(&set);
            let mut now = SigSet::empty();
            pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut now)).unwrap();
            assert!(
                now.contains(Signal::SIGURG),
                "the caller's signal mask is restored"
            );
        });
    });

    // Two calls at once, each with its own timer: the epoch still advances about once per tick, so neither is
    // stopped early.
    std::thread::scope(|s| {
        let a = s.spawn(|| stopped_at_deadline(&set));
        let b = s.spawn(|| stopped_at_deadline(&set));
        a.join().unwrap();
        b.join().unwrap();
    });
    expect_tickers(0, "still no ticker thread");

    // The signal stays with the first runtime: another one ticks with a thread, and bounds its calls too.
    let second = PluginSet::load(timed()).unwrap();
    assert_eq!(second.epoch_clock(), EpochClock::Thread);
    expect_tickers(1, "a ticker thread");
    stopped_at_deadline(&second);
    still_healthy(&second);
    drop(second);
    expect_tickers(0, "the ticker stops with its runtime");

    // The first runtime is unaffected by the second one's life and death.
    stopped_at_deadline(&set);
    still_healthy(&set);
}

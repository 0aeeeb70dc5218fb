//! What advances the engine's epoch, so every call meets its deadline: a ticker thread (long-lived hosts), or, in a
//! short-lived process, a POSIX timer armed only while a call runs, whose signal advances the epoch on the calling
//! thread itself (no thread to start).
//!
//! Why the timer: in the short-lived CNI process the plugin runtime lives for one or two calls, and starting a thread
//! (stack mapping, guard page, clone, and the new thread usually running first on its parent's CPU) costs far more
//! than a timer's three system calls per call (docs/performance.md §2).
//!
//! The timer sends `SIGURG` to the thread that makes the call (`SIGEV_THREAD_ID`). `SIGURG` is ignored by default, so
//! a signal still in flight after its timer is deleted, or reaching a process that never claimed it, does nothing.
//! The handler only reads a process-wide slot (set once, never freed) and increments the engine's atomic epoch
//! counter, both async-signal-safe. One engine per process owns the slot (a one-shot process has one runtime); any
//! other runtime, a process where another library handles `SIGURG`, or a call whose timer cannot be created, uses a
//! ticker thread instead, so no call ever runs without a deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{
    SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, SigmaskHow, Signal, pthread_sigmask,
};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;
use wasmtime::Engine;

/// How a runtime's epoch advances (see [`crate::RuntimeConfig::epoch_clock`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EpochClock {
    /// A thread ticks for as long as the runtime lives (long-lived hosts: the webhook, `danmctl`).
    #[default]
    Thread,
    /// A per-call timer on the calling thread (short-lived processes: the CNI). Falls back to a thread when the
    /// process-wide signal slot is taken or a timer cannot be created.
    CallTimer,
}

/// The signal the call timers send.
const SIGNAL: Signal = Signal::SIGURG;

/// The engine whose epoch the timer signal advances.
struct Slot {
    engine: Engine,
    /// When the slot was claimed; the handler measures time since then.
    start: Instant,
    /// Nanoseconds after `start` of the last increment.
    last: AtomicU64,
    /// Minimum nanoseconds between increments: 9/10 of a tick, so that calls running at the same time on several
    /// threads (one timer each) still advance the epoch about once per tick, and one timer's jitter at most delays
    /// an increment by a tick.
    spacing: u64,
}

static SLOT: OnceLock<Slot> = OnceLock::new();

extern "C" fn on_tick(_signal: nix::libc::c_int) {
    // Async-signal-safe: an atomic load of an initialised `OnceLock`, `clock_gettime` and atomic integer updates.
    let Some(slot) = SLOT.get() else { return };
    let now = u64::try_from(slot.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let last = slot.last.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= slot.spacing
        && slot
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        slot.engine.increment_epoch();
    }
}

/// Makes `engine` the one the timer signal advances, installing the handler. False when another engine holds the
/// slot or the signal has a handler of someone else's.
fn claim(engine: &Engine, tick: Duration) -> bool {
    let mut mine = false;
    SLOT.get_or_init(|| {
        mine = true;
        Slot {
            engine: engine.clone(),
            start: Instant::now(),
            last: AtomicU64::new(0),
            spacing: u64::try_from(tick.as_nanos() * 9 / 10).unwrap_or(u64::MAX),
        }
    });
    if !mine {
        return false;
    }
    let action = SigAction::new(
        SigHandler::Handler(on_tick),
        SaFlags::SA_RESTART | SaFlags::SA_ONSTACK,
        SigSet::empty(),
    );
    // SAFETY: `on_tick` is async-signal-safe (see above) and stays valid for the life of the process; the previous
    // action is checked, and restored when it was not the default one.
    #[allow(unsafe_code)]
    match unsafe { nix::sys::signal::sigaction(SIGNAL, &action) } {
        Ok(old) if matches!(old.handler(), SigHandler::SigDfl) => true,
        Ok(old) => {
            #[allow(unsafe_code)]
            // SAFETY: puts back exactly the action that was installed a moment ago.
            let _ = unsafe { nix::sys::signal::sigaction(SIGNAL, &old) };
            false
        }
        Err(_) => false,
    }
}

/// A thread incrementing the epoch every tick until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: &Engine, tick: Duration) -> Result<Ticker, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("danm-wasm-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::park_timeout(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// A runtime's epoch source.
pub(crate) struct Clock {
    engine: Engine,
    tick: Duration,
    /// `true` when this runtime owns the signal slot.
    timer: bool,
    /// The ticker thread: started at once in thread mode, on the first failed timer otherwise.
    thread: OnceLock<Result<Ticker, String>>,
}

impl Clock {
    /// Starts the epoch source `wanted` for `engine` (the ticker thread, or the signal handler).
    pub(crate) fn start(engine: &Engine, tick: Duration, wanted: EpochClock) -> Result<Clock, String> {
        let timer = wanted == EpochClock::CallTimer && claim(engine, tick);
        let clock = Clock {
            engine: engine.clone(),
            tick,
            timer,
            thread: OnceLock::new(),
        };
        if !timer {
            clock.thread()?;
        }
        Ok(clock)
    }

    /// What actually advances this runtime's epoch.
    pub(crate) fn kind(&self) -> EpochClock {
        match self.timer && self.thread.get().is_none() {
            true => EpochClock::CallTimer,
            false => EpochClock::Thread,
        }
    }

    fn thread(&self) -> Result<(), String> {
        match self.thread.get_or_init(|| Ticker::start(&self.engine, self.tick)) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        }
    }

    /// Makes sure the epoch advances while the caller runs guest code, until the guard is dropped: arms a timer for
    /// the calling thread, or (thread mode, or when the timer cannot be made) relies on the ticker thread.
    pub(crate) fn during_call(&self) -> Result<CallGuard, String> {
        if self.kind() == EpochClock::CallTimer {
            match CallTimer::arm(self.tick) {
                Ok(t) => return Ok(CallGuard { _timer: Some(t) }),
                Err(e) => tracing::warn!("cannot arm the call timer ({e}); starting an epoch ticker thread"),
            }
        }
        self.thread().map(|()| CallGuard { _timer: None })
    }
}

/// Keeps the epoch advancing for one call.
pub(crate) struct CallGuard {
    _timer: Option<CallTimer>,
}

/// A periodic timer signalling the calling thread, and the signal mask to put back.
struct CallTimer {
    /// `None` only while being dropped.
    timer: Option<Timer>,
    /// The thread's mask before the signal was unblocked, when it had it blocked.
    restore: Option<SigSet>,
}

impl CallTimer {
    fn arm(tick: Duration) -> nix::Result<CallTimer> {
        let mut set = SigSet::empty();
        set.add(SIGNAL);
        let mut old = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_UNBLOCK, Some(&set), Some(&mut old))?;
        let restore = old.contains(SIGNAL).then_some(old);
        let made = Timer::new(
            ClockId::CLOCK_MONOTONIC,
            SigEvent::new(SigevNotify::SigevThreadId {
                signal: SIGNAL,
                thread_id: nix::unistd::gettid().as_raw(),
                si_value: 0,
            }),
        )
        .and_then(|mut timer| {
            timer.set(
                Expiration::Interval(TimeSpec::from_duration(tick)),
                TimerSetTimeFlags::empty(),
            )?;
            Ok(timer)
        });
        match made {
            Ok(timer) => Ok(CallTimer {
                timer: Some(timer),
                restore,
            }),
            Err(e) => {
                if let Some(old) = restore {
                    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                }
                Err(e)
            }
        }
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        // Delete the timer (`timer_delete`) before the signal may be blocked again.
        drop(self.timer.take());
        if let Some(old) = self.restore.take() {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

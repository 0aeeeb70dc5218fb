//! The wasmtime engine danm configures (epochs, limits, optional pooling), its epoch ticker, and the per-call store
//! with an empty WASI context: no preopens, sockets, environment or arguments; stdout and stderr go to bounded pipes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::RuntimeConfig;

/// The state of one call's store.
pub(crate) struct Host {
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// Set when the guest asked for more memory than the cap allows.
    pub(crate) memory_denied: bool,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for Host {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Engine, linker and the epoch ticker shared by every plugin of a set.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<Host>,
    pub(crate) config: RuntimeConfig,
    /// Hex digest of the engine's precompile compatibility hash (part of every cache key).
    pub(crate) engine_hash: String,
    ticker: Mutex<Option<Ticker>>,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The output pipes of one call.
pub(crate) struct Pipes {
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
}

impl Pipes {
    /// Current lengths of (stderr, stdout), to report only what one call of a reused instance wrote.
    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.stderr.contents().len(), self.stdout.contents().len())
    }

    /// The guest's stderr (and stdout, if it wrote any) since `mark`, lossily decoded and trimmed.
    pub(crate) fn text_since(&self, (err_from, out_from): (usize, usize)) -> String {
        let err = self.stderr.contents();
        let mut s = String::from_utf8_lossy(err.get(err_from..).unwrap_or_default())
            .trim_end()
            .to_owned();
        let out = self.stdout.contents();
        let out = out.get(out_from..).unwrap_or_default();
        if !out.is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(String::from_utf8_lossy(out).trim_end());
        }
        s
    }
}

impl Runtime {
    pub(crate) fn new(config: RuntimeConfig) -> wasmtime::Result<Runtime> {
        let mut c = Config::new();
        c.wasm_component_model(true);
        c.epoch_interruption(true);
        c.consume_fuel(config.fuel.is_some());
        // The default 4 GiB reservation (virtual address space only) lets compiled code elide bounds checks; the
        // memory cap is enforced by the `ResourceLimiter` below.
        if config.pooling {
            let mut p = PoolingAllocationConfig::new();
            p.total_component_instances(64);
            p.total_core_instances(256);
            p.total_memories(128);
            p.total_tables(128);
            p.total_stacks(64);
            p.max_memory_size(config.memory_limit);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
        }
        let engine = Engine::new(&c)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let engine_hash = {
            use std::hash::Hash;
            let mut h = Sha256Hasher::default();
            engine.precompile_compatibility_hash().hash(&mut h);
            h.hex()
        };
        Ok(Runtime {
            engine,
            linker,
            config,
            engine_hash,
            ticker: Mutex::new(None),
        })
    }

    /// Starts the epoch ticker on first use (a `list` never needs it).
    fn ensure_ticker(&self) {
        let mut t = self.ticker.lock().unwrap_or_else(|e| e.into_inner());
        if t.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let engine = self.engine.clone();
        let tick = self.config.tick;
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("danm-wasm-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .ok();
        *t = Some(Ticker { stop, thread });
    }

    /// A fresh store for one call: empty WASI, bounded pipes, memory limiter, deadline, optional fuel.
    pub(crate) fn store(&self) -> (Store<Host>, Pipes) {
        self.ensure_ticker();
        let pipes = Pipes {
            stdout: MemoryOutputPipe::new(self.config.stderr_limit),
            stderr: MemoryOutputPipe::new(self.config.stderr_limit),
        };
        let wasi = WasiCtxBuilder::new()
            .stdout(pipes.stdout.clone())
            .stderr(pipes.stderr.clone())
            .build();
        let host = Host {
            wasi,
            table: ResourceTable::new(),
            memory_limit: self.config.memory_limit,
            memory_denied: false,
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| h as &mut dyn ResourceLimiter);
        store.epoch_deadline_trap();
        self.rearm(&mut store);
        (store, pipes)
    }

    /// Gives a store a full deadline and fuel budget for its next call.
    pub(crate) fn rearm(&self, store: &mut Store<Host>) {
        store.data_mut().memory_denied = false;
        store.set_epoch_deadline(self.config.deadline_ticks());
        if let Some(fuel) = self.config.fuel {
            // Fuel is enabled on the engine exactly when it is configured, so this cannot fail.
            let _ = store.set_fuel(fuel);
        }
    }
}

/// A `Hasher` that feeds sha256, for a stable hex digest of `precompile_compatibility_hash`.
#[derive(Default)]
pub(crate) struct Sha256Hasher(sha2::Sha256);

impl std::hash::Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        use sha2::Digest;
        let d = self.0.clone().finalize();
        u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.0.update(bytes);
    }
}

impl Sha256Hasher {
    fn hex(self) -> String {
        use sha2::Digest;
        hex(&self.0.finalize()[..16])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

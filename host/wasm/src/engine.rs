//! The wasmtime engine danm configures (epochs, limits, optional pooling), its linkers, and the per-call store: no
//! preopens, sockets, environment or arguments; stdout and stderr go to bounded pipes.
//!
//! Two linkers: the small one defines only `wasi:cli` and `wasi:io` (everything danm's plugins import: std's stdio,
//! environment and exit), with danm's own `wasi:cli` host (the call's [`Pipes`], an empty stdin and environment,
//! no terminals), so a store needs no WASI context at all; a short-lived CNI process builds it in a fraction of the
//! time the whole of WASI takes. A plugin importing anything else (filesystem, sockets, clocks, random) is linked
//! against the complete WASI linker, built on first need, whose empty WASI context a store builds on first use.

use std::sync::OnceLock;

use wasmtime::component::{Component, HasData, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::RuntimeConfig;
use crate::epoch::Clock;

/// The state of one call's store.
pub(crate) struct Host {
    /// stdout and stderr of the plugin (danm's `wasi:cli` host on the small linker, and the WASI context's).
    pipes: Pipes,
    /// The WASI context of plugins linked against all of WASI, built on their first WASI call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    memory_limit: usize,
    /// Set when the guest asked for more memory than the cap allows.
    pub(crate) memory_denied: bool,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let Host {
            pipes, wasi, table, ..
        } = self;
        let ctx = wasi.get_or_insert_with(|| {
            WasiCtxBuilder::new()
                .stdout(pipes.stdout.clone())
                .stderr(pipes.stderr.clone())
                .build()
        });
        WasiCtxView { ctx, table }
    }
}

/// The small linker's `wasi:cli` host: stdout and stderr are the call's [`Pipes`], stdin is closed, the
/// environment, arguments and working directory are empty, nothing is a terminal.
struct StdioView<'a> {
    pipes: &'a Pipes,
    table: &'a mut ResourceTable,
}

/// `HasData` for [`StdioView`].
struct HasStdio;

impl HasData for HasStdio {
    type Data<'a> = StdioView<'a>;
}

mod stdio_host {
    //! danm's `wasi:cli` host functions for [`super::StdioView`] (the same behaviour as wasmtime-wasi's for a context
    //! with these settings).

    use wasmtime::component::Resource;
    use wasmtime_wasi::I32Exit;
    use wasmtime_wasi::cli::StdoutStream;
    use wasmtime_wasi::p2::bindings::cli::{
        environment, exit, stderr, stdin, stdout, terminal_input, terminal_output, terminal_stderr,
        terminal_stdin, terminal_stdout,
    };
    use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, pipe::ClosedInputStream};

    use super::StdioView;

    impl stdin::Host for StdioView<'_> {
        fn get_stdin(&mut self) -> wasmtime::Result<Resource<DynInputStream>> {
            Ok(self.table.push(Box::new(ClosedInputStream) as DynInputStream)?)
        }
    }

    impl stdout::Host for StdioView<'_> {
        fn get_stdout(&mut self) -> wasmtime::Result<Resource<DynOutputStream>> {
            Ok(self.table.push(self.pipes.stdout.p2_stream())?)
        }
    }

    impl stderr::Host for StdioView<'_> {
        fn get_stderr(&mut self) -> wasmtime::Result<Resource<DynOutputStream>> {
            Ok(self.table.push(self.pipes.stderr.p2_stream())?)
        }
    }

    impl environment::Host for StdioView<'_> {
        fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
            Ok(Vec::new())
        }
        fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
            Ok(None)
        }
    }

    impl exit::Host for StdioView<'_> {
        fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
            Err(wasmtime::format_err!(I32Exit(if status.is_ok() { 0 } else { 1 })))
        }
        fn exit_with_code(&mut self, status_code: u8) -> wasmtime::Result<()> {
            Err(wasmtime::format_err!(I32Exit(status_code.into())))
        }
    }

    impl terminal_input::Host for StdioView<'_> {}
    impl terminal_input::HostTerminalInput for StdioView<'_> {
        fn drop(&mut self, r: Resource<terminal_input::TerminalInput>) -> wasmtime::Result<()> {
            self.table.delete(r)?;
            Ok(())
        }
    }

    impl terminal_output::Host for StdioView<'_> {}
    impl terminal_output::HostTerminalOutput for StdioView<'_> {
        fn drop(&mut self, r: Resource<terminal_output::TerminalOutput>) -> wasmtime::Result<()> {
            self.table.delete(r)?;
            Ok(())
        }
    }

    impl terminal_stdin::Host for StdioView<'_> {
        fn get_terminal_stdin(
            &mut self,
        ) -> wasmtime::Result<Option<Resource<terminal_input::TerminalInput>>> {
            Ok(None)
        }
    }

    impl terminal_stdout::Host for StdioView<'_> {
        fn get_terminal_stdout(
            &mut self,
        ) -> wasmtime::Result<Option<Resource<terminal_output::TerminalOutput>>> {
            Ok(None)
        }
    }

    impl terminal_stderr::Host for StdioView<'_> {
        fn get_terminal_stderr(
            &mut self,
        ) -> wasmtime::Result<Option<Resource<terminal_output::TerminalOutput>>> {
            Ok(None)
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

/// Version of the cache layout (cache.rs), hashed into every key.
const CACHE_FORMAT: &str = "danm-plugin-cache-3";

/// Engine, linkers and the epoch ticker shared by every plugin of a set.
pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    /// `wasi:cli` + `wasi:io` only.
    linker: Linker<Host>,
    /// All of WASI p2, built when a plugin imports more than the small linker has.
    full_linker: OnceLock<Result<Linker<Host>, String>>,
    pub(crate) config: RuntimeConfig,
    /// Hex digest of the engine's precompile compatibility hash (part of every cache key).
    pub(crate) engine_hash: String,
    /// Advances the engine's epoch (a ticker thread stops, and is joined, when the runtime is dropped).
    pub(crate) clock: Clock,
}

struct Built {
    engine: Engine,
    linker: Linker<Host>,
    engine_hash: String,
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.consume_fuel(config.fuel.is_some());
    // Smaller artefacts, so a short-lived process maps and checks less: `.eh_frame` only serves native unwinders
    // walking through wasm frames (wasmtime's own traps and backtraces don't use it), and the address map only adds
    // wasm offsets to trap backtraces.
    c.native_unwind_info(false);
    c.generate_address_map(false);
    // A short-lived process instantiates once: copying the data segments (tens of KB) into a fresh memory is
    // cheaper than setting up a copy-on-write image for it (measured: ~40 µs less per fresh-process translate).
    // Long-lived hosts (pooling) keep the image, which pays off from the second instance on.
    if !config.pooling {
        c.memory_init_cow(false);
    }
    // The default 4 GiB reservation (virtual address space only) lets compiled code elide bounds checks; the memory
    // cap is enforced by the `ResourceLimiter` below.
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
    c
}

/// Engine, small linker and cache key part.
fn build(c: &Config) -> wasmtime::Result<Built> {
    let engine = Engine::new(c)?;
    let mut linker = Linker::new(&engine);
    add_cli_and_io(&mut linker)?;
    let engine_hash = {
        use std::hash::{Hash, Hasher};
        // A cache key part, not a security boundary (access control is the cache directory's mode, integrity its
        // checksums, and wasmtime checks an artefact's engine settings itself when loading it): SipHash with fixed
        // keys is stable across runs and cheaper than sha256 in a short-lived process.
        let mut h = std::hash::DefaultHasher::new();
        // The layout of danm's cache entries (see cache.rs) is part of what makes an entry usable.
        CACHE_FORMAT.hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        format!("{:016x}", h.finish())
    };
    Ok(Built {
        engine,
        linker,
        engine_hash,
    })
}

/// The output pipes of one call (clones share the buffers).
#[derive(Clone)]
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
    /// Builds the engine and the small linker on the calling thread, then starts the epoch source (a ticker thread
    /// that parks at once, or the call timers' signal handler; see `epoch.rs`).
    ///
    /// Everything happens on the caller: a new thread usually first runs on its parent's CPU while the parent waits,
    /// so building the engine on a helper thread while the caller reads the plugin directory made a short-lived
    /// process slower, not faster (docs/performance.md §2).
    pub(crate) fn new(config: RuntimeConfig) -> Result<Runtime, String> {
        let built = build(&engine_config(&config)).map_err(|e| format!("{e:#}"))?;
        let clock = Clock::start(&built.engine, config.tick, config.epoch_clock)?;
        Ok(Runtime {
            engine: built.engine,
            linker: built.linker,
            full_linker: OnceLock::new(),
            config,
            engine_hash: built.engine_hash,
            clock,
        })
    }

    /// Resolves a component's imports: against the small linker when it suffices, else against all of WASI.
    pub(crate) fn instantiate_pre(&self, component: &Component) -> wasmtime::Result<InstancePre<Host>> {
        match self.linker.instantiate_pre(component) {
            Ok(pre) => Ok(pre),
            Err(_) => {
                let full = self.full_linker.get_or_init(|| {
                    let mut l = Linker::new(&self.engine);
                    wasmtime_wasi::p2::add_to_linker_sync(&mut l)
                        .map(|()| l)
                        .map_err(|e| format!("{e:#}"))
                });
                match full {
                    Ok(l) => l.instantiate_pre(component),
                    Err(e) => Err(wasmtime::Error::msg(e.clone())),
                }
            }
        }
    }

    /// A fresh store for one call: empty WASI, bounded pipes, memory limiter, deadline, optional fuel.
    pub(crate) fn store(&self) -> (Store<Host>, Pipes) {
        let pipes = Pipes {
            stdout: MemoryOutputPipe::new(self.config.stderr_limit),
            stderr: MemoryOutputPipe::new(self.config.stderr_limit),
        };
        let host = Host {
            pipes: pipes.clone(),
            wasi: None,
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

/// `HasData` for the `wasi:io` bindings: they only need the resource table.
struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// `wasi:cli/*` ([`StdioView`]) and `wasi:io/*` (wasmtime-wasi's host implementations, sync flavour).
fn add_cli_and_io(l: &mut Linker<Host>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::cli;
    use wasmtime_wasi::p2::bindings::sync::io;
    fn table(h: &mut Host) -> &mut ResourceTable {
        &mut h.table
    }
    fn stdio(h: &mut Host) -> StdioView<'_> {
        StdioView {
            pipes: &h.pipes,
            table: &mut h.table,
        }
    }
    io::error::add_to_linker::<Host, HasIo>(l, table)?;
    io::poll::add_to_linker::<Host, HasIo>(l, table)?;
    io::streams::add_to_linker::<Host, HasIo>(l, table)?;
    cli::exit::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::environment::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::stdin::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::stdout::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::stderr::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::terminal_input::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::terminal_output::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::terminal_stdin::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::terminal_stdout::add_to_linker::<Host, HasStdio>(l, stdio)?;
    cli::terminal_stderr::add_to_linker::<Host, HasStdio>(l, stdio)?;
    Ok(())
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

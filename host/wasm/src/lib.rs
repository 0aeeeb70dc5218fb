//! The plugin runtime: finds, checks, precompiles, instantiates and calls the WASI backend and rules plugins.

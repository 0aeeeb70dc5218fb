//! svcwatcher (in progress).

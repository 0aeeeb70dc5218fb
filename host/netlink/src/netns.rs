//! Entering network namespaces: the only module that calls `setns`/`unshare`.
//!
//! `setns(CLONE_NEWNET)` moves only the calling thread. A runtime worker or a pooled blocking thread that joined a
//! pod's namespace would later run unrelated work there, so every namespace entry happens on a fresh
//! `std::thread` that exits afterwards ([`run_in`]). Netlink sockets created on such a thread stay bound to that
//! namespace after the thread is gone, which is how [`crate::RtNetlink`] talks to other namespaces. All calls
//! are nix's safe wrappers: this crate needs no `unsafe`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{NetlinkError, Op};
use crate::types::{NETNS_RUN_DIR, Netns};

/// The identity of a namespace file: (device, inode) of the nsfs inode it resolves to.
pub(crate) type NsId = (u64, u64);

/// The identity of `path`'s namespace; `NetnsNotFound` if the path is gone.
pub(crate) fn identity(op: Op, ns: &Netns, path: &Path) -> Result<NsId, NetlinkError> {
    match fs::metadata(path) {
        Ok(meta) => Ok((meta.dev(), meta.ino())),
        Err(err) => Err(netns_error(op, ns, err)),
    }
}

/// Opens the namespace file of `ns` (`/proc/self/ns/net` for the host).
pub(crate) fn open(op: Op, ns: &Netns) -> Result<File, NetlinkError> {
    let path = ns.file().unwrap_or(Path::new("/proc/self/ns/net"));
    File::open(path).map_err(|err| netns_error(op, ns, err))
}

fn netns_error(op: Op, ns: &Netns, err: io::Error) -> NetlinkError {
    if err.kind() == io::ErrorKind::NotFound {
        NetlinkError::NetnsNotFound {
            op,
            netns: ns.to_string(),
        }
    } else {
        NetlinkError::Netns {
            op,
            netns: ns.to_string(),
            source: err,
        }
    }
}

/// Runs `f` on a new thread that has joined `ns`, and returns its result. The thread ends with `f`, so no other
/// work ever runs in the joined namespace. For [`Netns::Host`] `f` still runs on its own thread (cheap, uniform).
pub(crate) async fn run_in<T, F>(op: Op, ns: &Netns, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = match ns {
        Netns::Host => None,
        Netns::Path(_) => Some(open(op, ns)?),
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let thread_ns = ns.clone();
    std::thread::Builder::new()
        .name("danm-netns".to_string())
        .spawn(move || {
            let result = match file {
                Some(file) => nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                    .map_err(|errno| NetlinkError::Netns {
                        op,
                        netns: thread_ns.to_string(),
                        source: io::Error::from(errno),
                    })
                    .map(|()| f()),
                None => Ok(f()),
            };
            let _ = tx.send(result);
        })
        .map_err(|err| NetlinkError::Netns {
            op,
            netns: ns.to_string(),
            source: err,
        })?;
    rx.await.map_err(|_| NetlinkError::Protocol {
        op,
        netns: ns.to_string(),
        object: String::new(),
        message: "the namespace thread ended without an answer".to_string(),
    })?
}

/// Creates a named namespace like `ip netns add <name>`: a fresh network namespace bind-mounted on
/// `/var/run/netns/<name>`. For tests and the lab; the CNI never creates namespaces.
pub fn create_named(name: &str) -> io::Result<Netns> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad netns name {name:?}"),
        ));
    }
    let dir = Path::new(NETNS_RUN_DIR);
    fs::create_dir_all(dir)?;
    let path = dir.join(name);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)?;
    let target = path.clone();
    let mounted = std::thread::spawn(move || -> io::Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("netns creation thread panicked")));
    if let Err(err) = mounted {
        let _ = fs::remove_file(&path);
        return Err(err);
    }
    Ok(Netns::Path(path))
}

/// Removes a namespace made by [`create_named`] (or `ip netns add`): unmounts and deletes the file. The kernel
/// destroys the namespace once nothing else holds it. Missing is not an error.
pub fn delete_named(name: &str) -> io::Result<()> {
    delete_path(&Path::new(NETNS_RUN_DIR).join(name))
}

/// Like [`delete_named`] for a namespace file path.
pub fn delete_path(path: &PathBuf) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(errno) => return Err(errno.into()),
    }
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

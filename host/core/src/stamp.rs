//! What identifies a file's content without reading it: the one file-stamp type, used by the plugin cache (has a
//! `.wasm` file changed since it was checked?) and by delegation (is this the plugin binary that answered VERSION?).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

/// A file's identity as git's index keeps it: device, inode, size, mtime and ctime. ctime cannot be set by user
/// tools, so a rewrite that restores the mtime is still noticed; a replaced file has another inode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

/// How long after its last change a file's stamp is trusted to tell it apart from any later change: file times come
/// from a clock that ticks in steps of up to a few milliseconds, so a change within the same step as a check can
/// leave the times as they were (git calls such index entries "racy" and checks them again).
const SETTLE_NS: i128 = 2_000_000_000;

impl FileStamp {
    /// The stamp of a file whose metadata was read.
    pub fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether the file has not changed for [`SETTLE_NS`], so that any later change gets other times.
    pub fn settled(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        self.ctime_ns.max(self.mtime_ns) + SETTLE_NS <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_with_the_old_mtime_and_a_replacement_are_both_noticed() {
        let dir = std::env::temp_dir().join(format!("danm-stamp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, b"one").unwrap();
        let first = FileStamp::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(first, FileStamp::of(&std::fs::metadata(&file).unwrap()));
        assert!(!first.settled(), "a file written just now is not settled");

        // Same length, mtime put back: the ctime still moves.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, b"two").unwrap();
        let f = std::fs::File::options().write(true).open(&file).unwrap();
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(first.mtime_ns as u64);
        f.set_modified(mtime).unwrap();
        let rewritten = FileStamp::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(rewritten.mtime_ns, first.mtime_ns);
        assert_ne!(rewritten, first);

        // Replaced by rename: another inode.
        let other = dir.join("g");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &file).unwrap();
        assert_ne!(
            FileStamp::of(&std::fs::metadata(&file).unwrap()).ino,
            rewritten.ino
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

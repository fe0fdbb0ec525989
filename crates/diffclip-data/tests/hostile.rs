//! Hostile input (issue 14): devices, FIFOs and directories given as files, oversized files,
//! pathological shard patterns, broken CSV files, bad images that must be counted, and property
//! tests over arbitrary bytes and strings. Every case ends in an error or a value, quickly: no
//! panic, no hang (the cases that could hang run on a thread with a deadline).

#[path = "datasets/fixtures.rs"]
mod fixtures;
#[path = "hostile/files.rs"]
mod files;
#[path = "hostile/patterns.rs"]
mod patterns;
#[path = "hostile/csv.rs"]
mod csv;
#[path = "hostile/counting.rs"]
mod counting;
#[path = "hostile/tokenizer.rs"]
mod tokenizer;
#[path = "hostile/fuzz.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

use diffclip_data::datasets::*;
use diffclip_data::preprocess::*;
use diffclip_data::tokenizer::*;
use fixtures::*;
use proptest::prelude::*;
use proptest::sample::Index;

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// `/dev/zero`, a FIFO and a directory, each with what its error must say.
fn special_files(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let fifo = dir.join("pipe.png");
    mkfifo(&fifo);
    let folder = dir.join("folder.png");
    std::fs::create_dir(&folder).unwrap();
    vec![
        (PathBuf::from("/dev/zero"), "character device"),
        (fifo, "named pipe"),
        (folder, "directory"),
    ]
}

fn assert_names(err: &str, path: &Path, kind: &str) {
    assert!(
        err.contains(&*path.to_string_lossy())
            && err.contains(kind)
            && err.contains("regular file"),
        "{}: {err}",
        path.display()
    );
}

/// A CSV file of `filepath,title` rows under its header.
fn captions(rows: &[String]) -> String {
    let mut text = String::from("filepath,title\n");
    for r in rows {
        text += r;
        text += "\n";
    }
    text
}

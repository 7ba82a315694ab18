//! What a run may replace: the rule that keeps an output path from ever deleting a user's file.
//!
//! An output folder (results, a simulation) is written beside its target and renamed into place,
//! so an existing target is deleted when replaced. Only two kinds of folder may be replaced: an
//! empty one, and one that a previous run of ours wrote (it holds our marker file, such as
//! `kilosort-rs.json`). A file, a symbolic link, a folder of anything else, and a folder that is
//! or holds one of the run's inputs are refused — before any work, and again at the rename.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What is at an output path before the run writes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing: the folder will be created.
    Nothing,
    /// An empty folder.
    EmptyFolder,
    /// A folder holding the marker file of an earlier run of ours.
    OurFolder,
}

/// Checks that `target` may receive a run's output folder, and says what is there now.
///
/// `marker` is the file an earlier run of ours left in its folder. `inputs` are the files the run
/// reads (recording, probe, settings): the target may neither be one nor hold one. An existing
/// folder of ours is refused unless `overwrite` (the error says to pass `--overwrite`); an empty
/// one is used as it is.
pub fn check_output_folder(target: &Path, marker: &str, overwrite: bool, inputs: &[PathBuf]) -> Result<Occupant> {
    let refuse = |detail: String| Err(Error::ResultsFolder { path: target.to_path_buf(), detail });
    if let Some(input) = inputs.iter().find(|input| is_within(input, target)) {
        let what = if same_path(input, target) { "is" } else { "holds" };
        return refuse(format!(
            "{what} the input {}, which writing results here would delete; choose a new folder for the results",
            input.display()
        ));
    }
    let Ok(meta) = fs::symlink_metadata(target) else { return Ok(Occupant::Nothing) };
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link; name the results folder itself, or a new folder".into());
    }
    if !meta.is_dir() {
        return refuse("is a file, not a folder; results go into a folder of their own: choose a new name".into());
    }
    let mut entries = fs::read_dir(target).map_err(|e| Error::io("cannot list", target, e))?;
    if entries.next().is_none() {
        return Ok(Occupant::EmptyFolder);
    }
    if !target.join(marker).is_file() {
        return refuse(format!(
            "already holds files, and not the results of a run of kilosort-rs (no {marker}); it is never \
             replaced, even with --overwrite: choose a new folder"
        ));
    }
    if !overwrite {
        return Err(Error::ResultsExist { path: target.to_path_buf() });
    }
    Ok(Occupant::OurFolder)
}

/// Whether `path` is `folder` or lies inside it, following links on both sides.
pub fn is_within(path: &Path, folder: &Path) -> bool {
    let (path, folder) = (resolved(path), resolved(folder));
    path.starts_with(&folder)
}

fn same_path(a: &Path, b: &Path) -> bool {
    resolved(a) == resolved(b)
}

/// The absolute path with links resolved as far as the path exists: `a/b/new` whose `a/b` exists
/// resolves `a/b` and appends `new`.
fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// Fails, naming `what` and the sizes, when the file system holding `folder` (or its nearest
/// existing ancestor) has less than `bytes` free. Unknown free space passes.
pub fn check_free_space(folder: &Path, bytes: u64, what: &str) -> Result<()> {
    let existing = resolved(folder).ancestors().find(|p| p.exists()).map(Path::to_path_buf);
    let Some(free) = existing.as_deref().and_then(free_bytes) else { return Ok(()) };
    if bytes <= free {
        return Ok(());
    }
    Err(Error::ResultsFolder {
        path: folder.to_path_buf(),
        detail: format!(
            "{what} needs {:.1} GB but only {:.1} GB is free there; free some space, write elsewhere, or make it smaller",
            bytes as f64 / 1e9,
            free as f64 / 1e9
        ),
    })
}

/// Bytes available to this user on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` is written by the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: &str = "kilosort-rs.json";

    fn folder_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn a_new_or_empty_folder_is_used_without_overwrite() {
        let dir = folder_with(&[]);
        assert_eq!(check_output_folder(dir.path(), MARK, false, &[]).unwrap(), Occupant::EmptyFolder);
        let new = dir.path().join("a/b");
        assert_eq!(check_output_folder(&new, MARK, false, &[]).unwrap(), Occupant::Nothing);
    }

    #[test]
    fn our_folder_needs_overwrite() {
        let dir = folder_with(&[MARK, "spike_times.npy"]);
        assert!(matches!(check_output_folder(dir.path(), MARK, false, &[]), Err(Error::ResultsExist { .. })));
        assert_eq!(check_output_folder(dir.path(), MARK, true, &[]).unwrap(), Occupant::OurFolder);
    }

    #[test]
    fn issue_22_a_folder_of_other_files_is_never_replaced() {
        let dir = folder_with(&["notes.txt"]);
        let err = check_output_folder(dir.path(), MARK, true, &[]).unwrap_err().to_string();
        assert!(err.contains("never replaced") && err.contains(MARK), "{err}");
    }

    #[test]
    fn issue_22_a_file_is_never_a_results_folder() {
        let dir = folder_with(&["rec.bin"]);
        let file = dir.path().join("rec.bin");
        let err = check_output_folder(&file, MARK, true, &[]).unwrap_err().to_string();
        assert!(err.contains("is a file"), "{err}");
    }

    #[test]
    fn issue_22_the_target_may_not_be_or_hold_an_input() {
        let dir = folder_with(&[MARK, "rec.bin"]);
        let rec = dir.path().join("rec.bin");
        let err = check_output_folder(dir.path(), MARK, true, std::slice::from_ref(&rec)).unwrap_err().to_string();
        assert!(err.contains("holds the input") && err.contains("rec.bin"), "{err}");
        let err = check_output_folder(&rec, MARK, true, std::slice::from_ref(&rec)).unwrap_err().to_string();
        assert!(err.contains("is the input"), "{err}");
        // Spelled differently (a `..` detour) it is still the same folder.
        let detour = dir.path().join("x/..");
        fs::create_dir(dir.path().join("x")).unwrap();
        assert!(check_output_folder(&detour, MARK, true, &[rec]).is_err());
    }

    #[test]
    fn free_space_is_checked_on_the_nearest_existing_folder() {
        let dir = folder_with(&[]);
        let new = dir.path().join("not/yet");
        assert!(check_free_space(&new, 1000, "the recording").is_ok());
        let err = check_free_space(&new, u64::MAX / 2, "the recording").unwrap_err().to_string();
        assert!(err.contains("the recording needs") && err.contains("GB is free"), "{err}");
    }

    #[test]
    fn an_input_beside_the_target_is_fine() {
        let dir = folder_with(&["rec.bin"]);
        let rec = dir.path().join("rec.bin");
        assert!(check_output_folder(&dir.path().join("kilosort4"), MARK, false, &[rec]).is_ok());
    }
}

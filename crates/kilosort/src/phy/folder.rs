//! A results folder written atomically: everything goes into a hidden temporary folder beside
//! the target, which is renamed into place only when complete.
//!
//! An interrupted run leaves at most `.<name>.tmp-<pid>` (hidden, and without `params.py`, which
//! is written last, so Phy cannot open it); the target either does not exist or holds a complete
//! earlier result. With `overwrite`, the old folder is renamed aside, the new one renamed in,
//! then the old one deleted, so nothing of the old folder (a stale `.phy/` cache, old plots) is
//! carried over.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output_guard::{Occupant, check_output_folder};

use super::{PROVENANCE_FILE, PhyResults};

/// A results folder being written. Files go into [`ResultsFolder::path`]; [`ResultsFolder::commit`]
/// puts the folder in place. Dropped without a commit, the temporary folder is deleted.
#[derive(Debug)]
pub struct ResultsFolder {
    target: PathBuf,
    temp: PathBuf,
    overwrite: bool,
    /// The run's inputs (recording, probe, settings), which the target may not be or hold.
    inputs: Vec<PathBuf>,
    /// Files the old folder must not lose silently (the recording named in `params.py`).
    protected: Vec<PathBuf>,
    committed: bool,
}

impl ResultsFolder {
    /// Starts writing results for `target`, a run that reads `inputs` (recording, probe, settings).
    ///
    /// Fails now, before any work, unless `target` may be replaced (see
    /// [`check_output_folder`]): it does not exist, is an empty folder, or is an earlier results
    /// folder of ours and `overwrite` is set; and it neither is nor holds one of `inputs`.
    /// Creates the target's parent folders and the temporary folder `.<name>.tmp-<pid>` beside
    /// the target.
    pub fn create(target: &Path, overwrite: bool, inputs: &[PathBuf]) -> Result<Self> {
        let target = std::path::absolute(target).map_err(|e| Error::io("cannot resolve", target, e))?;
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(Error::ResultsFolder {
                path: target.clone(),
                detail: "is not a folder that can be created; name a results folder such as `kilosort4`".into(),
            });
        };
        check_output_folder(&target, PROVENANCE_FILE, overwrite, inputs)?;
        fs::create_dir_all(parent).map_err(|e| Error::io("cannot create folder", parent, e))?;
        let temp = parent.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
        if exists(&temp) {
            // Left by an earlier, interrupted run of a process with our id: not complete by construction.
            remove(&temp).map_err(|e| Error::io("cannot remove stale temporary folder", &temp, e))?;
        }
        fs::create_dir(&temp).map_err(|e| Error::io("cannot create folder", &temp, e))?;
        let inputs = inputs.to_vec();
        Ok(ResultsFolder { target, temp, overwrite, inputs, protected: Vec::new(), committed: false })
    }

    /// The temporary folder that files are written into (not the final location).
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Where the folder goes on [`commit`](Self::commit) (absolute).
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `contents` to the file `name` (a plain file name) in the folder; returns its path.
    pub fn add_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let plain = Path::new(name).file_name().is_some_and(|n| n == name) && !name.starts_with('.');
        if !plain {
            return Err(Error::ResultsFolder {
                path: self.target.join(name),
                detail: "extra result files must have a plain, visible file name (no folders)".into(),
            });
        }
        let path = self.temp.join(name);
        fs::write(&path, contents).map_err(|e| Error::io("cannot write", &path, e))?;
        Ok(path)
    }

    /// Writes the Phy files of `results` into the folder (`params.py` last).
    pub fn write_phy(&mut self, results: &PhyResults) -> Result<()> {
        results.validate()?;
        super::files::write_all(results, &self.temp, &self.target)?;
        self.protected.extend(results.params.dat_path.iter().cloned());
        Ok(())
    }

    /// Puts the folder in place and returns its path.
    ///
    /// The target is checked again, as in [`create`](Self::create), since something may have
    /// appeared there during the run. Refuses to replace a folder that holds the recording
    /// itself, since replacing would delete it.
    pub fn commit(mut self) -> Result<PathBuf> {
        match check_output_folder(&self.target, PROVENANCE_FILE, self.overwrite, &self.inputs)? {
            // Renaming a folder onto an empty one replaces it in one step.
            Occupant::Nothing | Occupant::EmptyFolder => fs::rename(&self.temp, &self.target)
                .map_err(|e| Error::io("cannot move results into", &self.target, e))?,
            Occupant::OurFolder => {
                self.check_no_recording_inside()?;
                self.replace()?;
            }
        }
        self.committed = true;
        Ok(self.target.clone())
    }

    /// Old aside, new in, old deleted; on failure to move the new one in, the old one is restored.
    fn replace(&self) -> Result<()> {
        let name = self.target.file_name().expect("checked in create").to_string_lossy();
        let aside = self.target.with_file_name(format!(".{name}.old-{}", std::process::id()));
        if exists(&aside) {
            remove(&aside).map_err(|e| Error::io("cannot remove stale folder", &aside, e))?;
        }
        fs::rename(&self.target, &aside)
            .map_err(|e| Error::io("cannot move the old results aside", &self.target, e))?;
        if let Err(e) = fs::rename(&self.temp, &self.target) {
            // Put the old results back, so a failed replace changes nothing.
            let _ = fs::rename(&aside, &self.target);
            return Err(Error::io("cannot move results into", &self.target, e));
        }
        remove(&aside)
            .map_err(|e| Error::io("new results are in place, but cannot delete the old ones moved to", &aside, e))
    }

    /// A recording (or any protected file) inside the target that the new folder does not hold
    /// again would be deleted by the replacement.
    fn check_no_recording_inside(&self) -> Result<()> {
        let target = fs::canonicalize(&self.target).unwrap_or_else(|_| self.target.clone());
        for file in &self.protected {
            let file = fs::canonicalize(file).unwrap_or_else(|_| file.clone());
            if let Ok(relative) = file.strip_prefix(&target)
                && !exists(&self.temp.join(relative))
            {
                return Err(Error::ResultsFolder {
                    path: self.target.clone(),
                    detail: format!(
                        "holds the recording {}, which replacing the folder would delete; choose another results \
                         folder, or move the recording out first",
                        file.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

impl Drop for ResultsFolder {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: an incomplete folder is hidden and lacks params.py even if this fails.
            let _ = remove(&self.temp);
        }
    }
}

fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn remove(path: &Path) -> std::io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
}

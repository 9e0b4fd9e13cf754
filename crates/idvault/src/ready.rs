//! The ready file of `serve --ready-file PATH`: once the server listens, a JSON object saying
//! where it listens and what it runs on, so that scripts and test harnesses wait for one file
//! instead of reading the console.
//!
//! It is written atomically (a temporary file in the same directory, flushed to disk, then
//! renamed over PATH), so a reader that sees the file sees all of it. It may hold the management
//! key created at a first start, so it is created readable by its owner only. A clean shutdown
//! removes it; a file left behind by a crash is removed at the next start, before anything else.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// What the ready file says. Field names are camelCase, like the SDKs' configuration. No
/// `Debug`: it may hold a management key, which must not reach a log.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyInfo {
    /// `http://<listen address>`: where this server answers (not the public URL, which may be
    /// a proxy's).
    pub url: String,
    pub port: u16,
    /// The project this server has when it has exactly one (always so after a first start);
    /// absent when there are several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// The management key created by this start (first start only): a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_key: Option<String>,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub pid: u32,
}

impl ReadyInfo {
    pub fn new(addr: SocketAddr, backend: &'static str) -> ReadyInfo {
        ReadyInfo {
            url: format!("http://{addr}"),
            port: addr.port(),
            project_id: None,
            management_key: None,
            backend,
            pid: std::process::id(),
        }
    }
}

/// The ready file of one server run: removed on drop, so that every clean exit from `serve`
/// (also an error after start-up) takes it away.
#[derive(Debug)]
pub struct ReadyFile {
    path: PathBuf,
}

impl ReadyFile {
    /// Removes a ready file left by an earlier run that did not stop cleanly, so that nobody
    /// mistakes it for this run's.
    pub fn clear_stale(path: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing the old ready file {}", path.display())),
        }
    }

    /// Writes `info` to `path` atomically, owner-readable only.
    pub fn write(path: &Path, info: &ReadyInfo) -> anyhow::Result<ReadyFile> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let file_name =
            path.file_name().with_context(|| format!("ready file {} has no file name", path.display()))?;
        // A dot-name in the same directory, so that the rename stays on one file system and a
        // reader watching for PATH never sees the half-written file.
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = dir.join(temp_name);
        let json = serde_json::to_vec_pretty(info).context("encoding the ready file")?;
        let written = write_private(&temp, &json).and_then(|()| {
            std::fs::rename(&temp, path)
                .with_context(|| format!("renaming {} to {}", temp.display(), path.display()))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        // The rename itself reaches the disk with the directory; failing that is no reason to stop
        // a running server (the file is in place for every reader).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(ReadyFile { path: path.to_owned() })
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove the ready file");
            }
        }
    }
}

/// Creates `path` (replacing any file there) with mode 0600 and `bytes`, flushed to disk.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("creating {}", path.display()))?;
    // A file that existed already keeps its mode through open(): set it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    file.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("flushing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ReadyInfo {
        let mut info = ReadyInfo::new("127.0.0.1:4321".parse().unwrap(), "sqlite");
        info.project_id = Some("P1".into());
        info
    }

    #[test]
    fn writes_the_json_owner_only_and_removes_it_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let file = ReadyFile::write(&path, &info()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["url"], "http://127.0.0.1:4321");
        assert_eq!(json["port"], 4321);
        assert_eq!(json["projectId"], "P1");
        assert_eq!(json["backend"], "sqlite");
        assert_eq!(json["pid"], std::process::id());
        assert!(json.get("managementKey").is_none(), "no key field when no key was created");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the ready file is left: the temporary one was renamed.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ready.json")]);
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn replaces_a_stale_file_and_makes_it_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        std::fs::write(&path, "stale").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        ReadyFile::clear_stale(&path).unwrap();
        assert!(!path.exists());
        ReadyFile::clear_stale(&path).unwrap();
        std::fs::write(&path, "stale").unwrap();
        let _file = ReadyFile::write(&path, &info()).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"P1\""));
    }
}

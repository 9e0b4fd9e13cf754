//! The versioned master keyring.
//!
//! Sources, in order: `IDVAULT_MASTER_KEY`, else `master.key` in the data directory (created on
//! first start, mode 0600). Both use the same text format: either one base64 key (version 1), or
//! `version:base64` entries separated by newlines, commas or spaces. `#` starts a comment line.
//! The highest version wraps new data keys; older versions stay to unwrap until retired.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

use crate::aead::SecretKey;

pub const MASTER_KEY_FILE: &str = "master.key";

/// Where the keyring came from; only a file keyring can be rotated by idvault itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File { path: PathBuf, created: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("IDVAULT_MASTER_KEY: {0}")]
    BadEnv(String),
    #[error("master key file {path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Refused(String),
}

/// Master key versions. Never printed.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, SecretKey>,
    source: KeySource,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("versions", &self.versions()).field("source", &self.source).finish()
    }
}

fn decode_key(text: &str) -> Option<SecretKey> {
    let bytes = Zeroizing::new(STANDARD.decode(text).or_else(|_| URL_SAFE_NO_PAD.decode(text)).ok()?);
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(SecretKey::from_bytes(arr))
}

/// Parses the keyring text format; the error never contains key material.
fn parse(text: &str) -> Result<BTreeMap<u32, SecretKey>, String> {
    let entries: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split([',', ' ', '\t']))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut keys = BTreeMap::new();
    match entries.as_slice() {
        [] => return Err("no key found".into()),
        [single] if !single.contains(':') => {
            keys.insert(1, decode_key(single).ok_or("the key is not base64 of exactly 32 bytes")?);
        }
        many => {
            for entry in many {
                let (version, key) = entry.split_once(':').ok_or("entries must be 'version:base64'")?;
                let version: u32 =
                    version.parse().map_err(|_| "a version is not a positive number".to_owned())?;
                if version == 0 {
                    return Err("versions start at 1".into());
                }
                let key = decode_key(key)
                    .ok_or_else(|| format!("key version {version} is not base64 of exactly 32 bytes"))?;
                if keys.insert(version, key).is_some() {
                    return Err(format!("key version {version} appears twice"));
                }
            }
        }
    }
    Ok(keys)
}

fn render(keys: &BTreeMap<u32, SecretKey>) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::from(
        "# idvault master keys, one 'version:base64' per line. The highest version wraps new data keys.\n\
         # Back this file up: without it stored secrets cannot be read.\n",
    ));
    for (v, k) in keys {
        out.push_str(&format!("{v}:{}\n", STANDARD.encode(k.bytes())));
    }
    out
}

/// Writes `contents` to `path` atomically with mode 0600: a temporary file, fsync, rename, fsync
/// of the directory. `create_only` refuses to replace an existing file.
fn write_owner_only(path: &Path, contents: &[u8], create_only: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("key.tmp");
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    if create_only {
        // hard_link fails if the target exists: never overwrite a key that sealed data.
        fs::hard_link(&tmp, path)?;
        fs::remove_file(&tmp)?;
    } else {
        fs::rename(&tmp, path)?;
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Keyring {
    /// Loads from `env_value` when set, else from (or into) `data_dir/master.key`. Only for a
    /// database known to be new: a server checks first that the database holds no wrapped data
    /// keys before it lets a key be created (see [`Keyring::load`] and [`Keyring::create`]).
    pub fn load_or_create(env_value: Option<&str>, data_dir: &Path) -> Result<Keyring, KeyringError> {
        match Self::load(env_value, data_dir)? {
            Some(ring) => Ok(ring),
            None => Self::create(data_dir),
        }
    }

    /// Loads from `env_value` when set, else from `data_dir/master.key`; None when neither
    /// exists. Never creates anything.
    pub fn load(env_value: Option<&str>, data_dir: &Path) -> Result<Option<Keyring>, KeyringError> {
        if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
            let keys = parse(v).map_err(KeyringError::BadEnv)?;
            return Ok(Some(Keyring { keys, source: KeySource::Environment }));
        }
        match Self::load_file(&data_dir.join(MASTER_KEY_FILE)) {
            Ok(ring) => Ok(Some(ring)),
            Err(KeyringError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates `data_dir/master.key` holding a fresh version 1; refused if the file exists.
    pub fn create(data_dir: &Path) -> Result<Keyring, KeyringError> {
        let path = data_dir.join(MASTER_KEY_FILE);
        let mut keys = BTreeMap::new();
        keys.insert(1, SecretKey::generate());
        write_owner_only(&path, render(&keys).as_bytes(), true)
            .map_err(|source| KeyringError::Io { path: path.display().to_string(), source })?;
        Ok(Keyring { keys, source: KeySource::File { path, created: true } })
    }

    fn load_file(path: &Path) -> Result<Keyring, KeyringError> {
        let shown = path.display().to_string();
        let text = Zeroizing::new(
            fs::read_to_string(path).map_err(|source| KeyringError::Io { path: shown.clone(), source })?,
        );
        let keys = parse(&text).map_err(|reason| KeyringError::BadFile { path: shown, reason })?;
        Ok(Keyring { keys, source: KeySource::File { path: path.to_owned(), created: false } })
    }

    /// A keyring of given keys (tests and tools).
    pub fn from_keys(keys: impl IntoIterator<Item = (u32, SecretKey)>) -> Keyring {
        Keyring { keys: keys.into_iter().collect(), source: KeySource::Environment }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The version that wraps new data keys.
    pub fn current_version(&self) -> u32 {
        self.keys.keys().next_back().copied().unwrap_or(1)
    }

    pub fn key(&self, version: u32) -> Option<&SecretKey> {
        self.keys.get(&version)
    }

    /// Re-reads a file keyring (to see a rotation done by `idvault keys rotate` while serving).
    pub fn reloaded(&self) -> Option<Keyring> {
        match &self.source {
            KeySource::File { path, .. } => Self::load_file(path).ok(),
            KeySource::Environment => None,
        }
    }

    /// Adds a new, highest version and saves the file. Refused for an environment keyring: the
    /// operator owns that value (generate a key, append `,N:key`).
    pub fn rotate(&mut self) -> Result<u32, KeyringError> {
        let KeySource::File { path, .. } = &self.source else {
            return Err(KeyringError::Refused(
                "the master key comes from IDVAULT_MASTER_KEY (or IDVAULT_MASTER_KEY_FILE): add a new \
                 'version:base64' entry to it yourself (`idvault keys generate --version N` prints one)"
                    .into(),
            ));
        };
        let version = self.current_version() + 1;
        let mut keys = self.keys.clone();
        keys.insert(version, SecretKey::generate());
        write_owner_only(path, render(&keys).as_bytes(), false)
            .map_err(|source| KeyringError::Io { path: path.display().to_string(), source })?;
        self.keys = keys;
        Ok(version)
    }

    /// Removes a version from the file. The caller checks first that nothing uses it.
    pub fn retire(&mut self, version: u32) -> Result<(), KeyringError> {
        let KeySource::File { path, .. } = &self.source else {
            return Err(KeyringError::Refused(
                "the master key comes from IDVAULT_MASTER_KEY (or IDVAULT_MASTER_KEY_FILE): remove the entry \
                 from it yourself, once `idvault keys list` shows it wraps no data key"
                    .into(),
            ));
        };
        if !self.keys.contains_key(&version) {
            return Err(KeyringError::Refused(format!("master key version {version} does not exist")));
        }
        if version == self.current_version() {
            return Err(KeyringError::Refused(format!(
                "master key version {version} is the current one; rotate first"
            )));
        }
        let mut keys = self.keys.clone();
        keys.remove(&version);
        write_owner_only(path, render(&keys).as_bytes(), false)
            .map_err(|source| KeyringError::Io { path: path.display().to_string(), source })?;
        self.keys = keys;
        Ok(())
    }
}

/// A fresh random key in the keyring text format, for an environment keyring.
pub fn generate_entry(version: u32) -> Zeroizing<String> {
    Zeroizing::new(format!("{version}:{}", STANDARD.encode(SecretKey::generate().bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reuses_the_file_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = Keyring::load_or_create(None, dir.path()).unwrap();
        assert!(matches!(a.source(), KeySource::File { created: true, .. }));
        let b = Keyring::load_or_create(None, dir.path()).unwrap();
        assert!(matches!(b.source(), KeySource::File { created: false, .. }));
        assert_eq!(a.key(1).unwrap().bytes(), b.key(1).unwrap().bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(MASTER_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn legacy_single_key_file_is_version_1() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MASTER_KEY_FILE), format!("{}\n", STANDARD.encode([5u8; 32]))).unwrap();
        let ring = Keyring::load_or_create(None, dir.path()).unwrap();
        assert_eq!(ring.versions(), vec![1]);
        assert_eq!(ring.key(1).unwrap().bytes(), &[5u8; 32]);
    }

    #[test]
    fn env_formats_and_errors_without_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let one = STANDARD.encode([9u8; 32]);
        let ring = Keyring::load_or_create(Some(&one), dir.path()).unwrap();
        assert_eq!(ring.versions(), vec![1]);
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        let two = format!("1:{one}, 3:{}", STANDARD.encode([8u8; 32]));
        let ring = Keyring::load_or_create(Some(&two), dir.path()).unwrap();
        assert_eq!((ring.versions(), ring.current_version()), (vec![1, 3], 3));
        for bad in ["short", "1:short", "x:abc", &format!("0:{one}"), &format!("1:{one},1:{one}")] {
            let err = Keyring::load_or_create(Some(bad), dir.path()).unwrap_err().to_string();
            assert!(!err.contains(&one), "{err}");
        }
        assert!(ring.clone().rotate().is_err(), "env keyrings are not rotated by idvault");
    }

    #[test]
    fn rotate_and_retire_rewrite_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::load_or_create(None, dir.path()).unwrap();
        assert_eq!(ring.rotate().unwrap(), 2);
        let reread = ring.reloaded().unwrap();
        assert_eq!(reread.versions(), vec![1, 2]);
        assert_eq!(reread.key(1).unwrap().bytes(), ring.key(1).unwrap().bytes());
        assert!(ring.retire(2).is_err(), "current version cannot be retired");
        ring.retire(1).unwrap();
        assert_eq!(ring.reloaded().unwrap().versions(), vec![2]);
    }
}

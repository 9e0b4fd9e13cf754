//! Where the master key comes from: `IDVAULT_MASTER_KEY` (base64 of 32 bytes) when set, otherwise
//! a key file in the data directory, created on first start with owner-only permissions.

use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

use crate::SecretKey;

pub const MASTER_KEY_FILE: &str = "master.key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeySource {
    Environment,
    ExistingFile,
    CreatedFile,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("IDVAULT_MASTER_KEY must be the base64 encoding of exactly 32 bytes")]
    BadEnvKey,
    #[error("master key file {path} is not the base64 encoding of exactly 32 bytes")]
    BadFile { path: String },
    #[error("master key file {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

fn decode(text: &str) -> Option<SecretKey> {
    let text = text.trim();
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .ok()?,
    );
    let arr: [u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(SecretKey::from_bytes(arr))
}

/// Loads the master key from `env_value` if given, else from (or into) `data_dir/master.key`.
pub fn load_or_create_master_key(
    env_value: Option<&str>,
    data_dir: &Path,
) -> Result<(SecretKey, MasterKeySource), MasterKeyError> {
    if let Some(v) = env_value.filter(|v| !v.trim().is_empty()) {
        return decode(v)
            .map(|k| (k, MasterKeySource::Environment))
            .ok_or(MasterKeyError::BadEnvKey);
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    let shown = path.display().to_string();
    match fs::read_to_string(&path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            return decode(&text)
                .map(|k| (k, MasterKeySource::ExistingFile))
                .ok_or(MasterKeyError::BadFile { path: shown });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(MasterKeyError::Io { path: shown, source }),
    }
    let key = SecretKey::generate();
    let encoded = Zeroizing::new(STANDARD.encode(key.bytes()));
    write_owner_only(&path, encoded.as_bytes())
        .map_err(|source| MasterKeyError::Io { path: shown, source })?;
    Ok((key, MasterKeySource::CreatedFile))
}

/// Creates the file exclusively (never overwriting a key) with mode 0600, and syncs it so that a
/// crash right after first start cannot lose the key that sealed the first tokens.
fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_reuses_the_key_file_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, s1) = load_or_create_master_key(None, dir.path()).unwrap();
        assert_eq!(s1, MasterKeySource::CreatedFile);
        let (k2, s2) = load_or_create_master_key(None, dir.path()).unwrap();
        assert_eq!(s2, MasterKeySource::ExistingFile);
        assert_eq!(k1.bytes(), k2.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(MASTER_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn env_key_wins_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let env = STANDARD.encode([9u8; 32]);
        let (k, s) = load_or_create_master_key(Some(&env), dir.path()).unwrap();
        assert_eq!(s, MasterKeySource::Environment);
        assert_eq!(k.bytes(), &[9u8; 32]);
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        assert!(matches!(
            load_or_create_master_key(Some("short"), dir.path()),
            Err(MasterKeyError::BadEnvKey)
        ));
    }
}

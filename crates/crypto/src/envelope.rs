//! Envelope encryption: per-project data keys, wrapped by the master keyring, cached unwrapped in
//! memory so that the hot path (opening a token) does no I/O after a project's first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chacha20poly1305::XChaCha20Poly1305;
use zeroize::Zeroizing;

use idvault_core::clock::SharedClock;
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::secrets::{data_key_aad, Cipher, Sealer};
use idvault_core::store::{DataKeyStore, WrappedDataKey};

use crate::aead::{self, SecretKey, FORMAT_DATA_KEY, FORMAT_MASTER};
use crate::keyring::Keyring;

/// The data key version new secrets are sealed under. (Data key rotation would add versions.)
const DATA_KEY_VERSION: u32 = 1;
/// How often an unknown master key version may trigger a re-read of the keyring file.
const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

pub struct Envelope {
    keyring: RwLock<Keyring>,
    last_reload: Mutex<Option<Instant>>,
    store: Arc<dyn DataKeyStore>,
    clock: SharedClock,
    data_keys: RwLock<HashMap<(ProjectId, u32), Arc<XChaCha20Poly1305>>>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope").finish_non_exhaustive()
    }
}

impl Envelope {
    pub fn new(keyring: Keyring, store: Arc<dyn DataKeyStore>, clock: SharedClock) -> Self {
        Envelope {
            keyring: RwLock::new(keyring),
            last_reload: Mutex::new(None),
            store,
            clock,
            data_keys: RwLock::new(HashMap::new()),
        }
    }

    fn master_key(&self, version: u32) -> Option<SecretKey> {
        if let Some(k) = self.keyring.read().unwrap_or_else(|p| p.into_inner()).key(version) {
            return Some(k.clone());
        }
        // Maybe `idvault keys rotate` + `rewrap` ran while we were serving: re-read the file.
        self.reload_keyring(false);
        self.keyring.read().unwrap_or_else(|p| p.into_inner()).key(version).cloned()
    }

    fn reload_keyring(&self, force: bool) {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|p| p.into_inner());
            if !force && last.is_some_and(|t| t.elapsed() < RELOAD_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        let reloaded = self.keyring.read().unwrap_or_else(|p| p.into_inner()).reloaded();
        if let Some(ring) = reloaded {
            *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = ring;
        }
    }

    fn cached(&self, project: &ProjectId, version: u32) -> Option<Arc<XChaCha20Poly1305>> {
        self.data_keys.read().unwrap_or_else(|p| p.into_inner()).get(&(project.clone(), version)).cloned()
    }

    fn unwrap_key(&self, wrapped: &WrappedDataKey) -> Result<Arc<XChaCha20Poly1305>> {
        let master = self.master_key(wrapped.master_key_version).ok_or(Error::Decrypt(
            "data key is wrapped under a master key version this server does not have",
        ))?;
        let aead = Arc::new(unwrap_with(&master, wrapped)?.aead());
        self.data_keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((wrapped.project_id.clone(), wrapped.version), aead.clone());
        Ok(aead)
    }

    /// The project's data key for opening; loaded and cached on first use.
    async fn data_key(&self, project: &ProjectId, version: u32) -> Result<Arc<XChaCha20Poly1305>> {
        if let Some(k) = self.cached(project, version) {
            return Ok(k);
        }
        let wrapped = self
            .store
            .get_data_key(project, version)
            .await?
            .ok_or(Error::Decrypt("the project's data key is missing"))?;
        self.unwrap_key(&wrapped)
    }

    /// The data key for sealing, created (wrapped under the newest master key) on first use.
    async fn sealing_key(&self, project: &ProjectId) -> Result<Arc<XChaCha20Poly1305>> {
        if let Some(k) = self.cached(project, DATA_KEY_VERSION) {
            return Ok(k);
        }
        if let Some(wrapped) = self.store.get_data_key(project, DATA_KEY_VERSION).await? {
            return self.unwrap_key(&wrapped);
        }
        // A new data key is rare: pick up a rotation done while serving before wrapping it.
        self.reload_keyring(true);
        let (master_version, master) = {
            let ring = self.keyring.read().unwrap_or_else(|p| p.into_inner());
            let v = ring.current_version();
            (v, ring.key(v).cloned().ok_or_else(|| Error::Internal("the keyring is empty".into()))?)
        };
        let fresh = SecretKey::generate();
        let wrapped = WrappedDataKey {
            project_id: project.clone(),
            version: DATA_KEY_VERSION,
            wrapped: aead::seal(
                &master.aead(),
                FORMAT_MASTER,
                master_version,
                fresh.bytes(),
                &data_key_aad(project, DATA_KEY_VERSION),
            )?,
            master_key_version: master_version,
            created_ms: self.clock.now_ms(),
        };
        if !self.store.insert_data_key(&wrapped).await? {
            // Another writer created it first: use theirs.
            let theirs = self
                .store
                .get_data_key(project, DATA_KEY_VERSION)
                .await?
                .ok_or_else(|| Error::Internal("data key vanished after a conflict".into()))?;
            return self.unwrap_key(&theirs);
        }
        self.unwrap_key(&wrapped)
    }
}

#[async_trait]
impl Cipher for Envelope {
    async fn seal(&self, project: &ProjectId, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let key = self.sealing_key(project).await?;
        aead::seal(&key, FORMAT_DATA_KEY, DATA_KEY_VERSION, plaintext, aad)
    }

    async fn sealer(&self, project: &ProjectId) -> Result<Option<Arc<dyn Sealer>>> {
        Ok(Some(Arc::new(DataKeySealer(self.sealing_key(project).await?))))
    }

    async fn open(&self, project: &ProjectId, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        match aead::header(ciphertext)? {
            (FORMAT_DATA_KEY, version) => {
                let key = self.data_key(project, version).await?;
                aead::open(&key, ciphertext, aad)
            }
            (FORMAT_MASTER, version) => {
                let master = self
                    .master_key(version)
                    .ok_or(Error::Decrypt("sealed under a master key version this server does not have"))?;
                aead::open(&master.aead(), ciphertext, aad)
            }
            _ => Err(Error::Decrypt("unknown ciphertext format")),
        }
    }
}

/// Opens a wrapped data key with one master key version.
fn unwrap_with(master: &SecretKey, wrapped: &WrappedDataKey) -> Result<SecretKey> {
    let aad = data_key_aad(&wrapped.project_id, wrapped.version);
    let raw = aead::open(&master.aead(), &wrapped.wrapped, &aad)?;
    let bytes: [u8; 32] =
        raw.as_slice().try_into().map_err(|_| Error::Decrypt("data key has the wrong length"))?;
    Ok(SecretKey::from_bytes(bytes))
}

/// Why a keyring cannot open a database's data keys. Names versions and counts, never keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringMismatch {
    /// The master key versions the database's data keys are wrapped under.
    pub needed: Vec<u32>,
    /// The versions the keyring has.
    pub have: Vec<u32>,
    /// Needed versions the keyring does not have.
    pub missing: Vec<u32>,
    /// Needed versions the keyring has, but as a different key than the one that wrapped them.
    pub different: Vec<u32>,
    /// Data keys that did not open, of `total`.
    pub unreadable: usize,
    pub total: usize,
}

fn list(versions: &[u32]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for KeyringMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the database's data keys need master key version(s) {}; the keyring has version(s) {}",
            list(&self.needed),
            list(&self.have)
        )?;
        if !self.missing.is_empty() {
            write!(f, "; missing: {}", list(&self.missing))?;
        }
        if !self.different.is_empty() {
            write!(
                f,
                "; present but a different key than the one that wrapped them: {}",
                list(&self.different)
            )?;
        }
        write!(f, " ({} of {} data keys cannot be opened)", self.unreadable, self.total)
    }
}

/// Proves that `keyring` opens every one of `keys` (a database's wrapped data keys). A server
/// that started without this would answer every read of a sealed secret with a decryption error;
/// a keyring of the right versions but other keys (a `master.key` made by another data
/// directory) is caught here too, since only unwrapping tells keys apart. Each data key is
/// checked: two keys of one version number may have wrapped different rows.
pub fn check_data_keys(
    keyring: &Keyring,
    keys: &[WrappedDataKey],
) -> std::result::Result<(), KeyringMismatch> {
    use std::collections::BTreeSet;
    let mut needed = BTreeSet::new();
    let mut missing = BTreeSet::new();
    let mut different = BTreeSet::new();
    let mut unreadable = 0;
    for key in keys {
        needed.insert(key.master_key_version);
        match keyring.key(key.master_key_version) {
            None => {
                missing.insert(key.master_key_version);
                unreadable += 1;
            }
            Some(master) => {
                if unwrap_with(master, key).is_err() {
                    different.insert(key.master_key_version);
                    unreadable += 1;
                }
            }
        }
    }
    if unreadable == 0 {
        return Ok(());
    }
    Err(KeyringMismatch {
        needed: needed.into_iter().collect(),
        have: keyring.versions(),
        missing: missing.into_iter().collect(),
        different: different.into_iter().collect(),
        unreadable,
        total: keys.len(),
    })
}

/// A project's current data key, for sealing on blocking threads (see [`Cipher::sealer`]): the
/// same ciphertext format as [`Envelope`]'s `seal`.
struct DataKeySealer(Arc<XChaCha20Poly1305>);

impl Sealer for DataKeySealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        aead::seal(&self.0, FORMAT_DATA_KEY, DATA_KEY_VERSION, plaintext, aad)
    }
}

/// What a re-wrap did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RewrapReport {
    pub total: usize,
    pub rewrapped: usize,
    pub already_current: usize,
}

/// Re-wraps every data key not under the keyring's current version. Online: the data keys
/// themselves do not change, so servers holding them unwrapped keep working; each row is swapped
/// with a compare-and-swap on its master key version. `progress` is called after each key.
pub async fn rewrap_data_keys(
    keyring: &Keyring,
    store: &dyn DataKeyStore,
    mut progress: impl FnMut(usize, usize),
) -> Result<RewrapReport> {
    let keys = store.list_data_keys().await?;
    let current = keyring.current_version();
    let master = keyring.key(current).ok_or_else(|| Error::Internal("the keyring is empty".into()))?;
    let mut report = RewrapReport { total: keys.len(), ..Default::default() };
    for (i, key) in keys.iter().enumerate() {
        if key.master_key_version == current {
            report.already_current += 1;
        } else {
            let old = keyring.key(key.master_key_version).ok_or(Error::Decrypt(
                "a data key is wrapped under a master key version missing from the keyring",
            ))?;
            let aad = data_key_aad(&key.project_id, key.version);
            let raw = unwrap_with(old, key)?;
            let rewrapped = WrappedDataKey {
                wrapped: aead::seal(&master.aead(), FORMAT_MASTER, current, raw.bytes(), &aad)?,
                master_key_version: current,
                ..key.clone()
            };
            if store.rewrap_data_key(&rewrapped, key.master_key_version).await? {
                report.rewrapped += 1;
            }
        }
        progress(i + 1, keys.len());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use idvault_core::clock::SystemClock;

    #[derive(Default)]
    struct MemKeys(Mutex<HashMap<(ProjectId, u32), WrappedDataKey>>);

    #[async_trait]
    impl DataKeyStore for MemKeys {
        async fn get_data_key(&self, project: &ProjectId, version: u32) -> Result<Option<WrappedDataKey>> {
            Ok(self.0.lock().unwrap().get(&(project.clone(), version)).cloned())
        }
        async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<bool> {
            let mut m = self.0.lock().unwrap();
            let k = (key.project_id.clone(), key.version);
            if m.contains_key(&k) {
                return Ok(false);
            }
            m.insert(k, key.clone());
            Ok(true)
        }
        async fn list_data_keys(&self) -> Result<Vec<WrappedDataKey>> {
            Ok(self.0.lock().unwrap().values().cloned().collect())
        }
        async fn rewrap_data_key(&self, key: &WrappedDataKey, expected: u32) -> Result<bool> {
            let mut m = self.0.lock().unwrap();
            match m.get_mut(&(key.project_id.clone(), key.version)) {
                Some(k) if k.master_key_version == expected => {
                    *k = key.clone();
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    fn envelope(ring: Keyring, store: Arc<MemKeys>) -> Envelope {
        Envelope::new(ring, store, Arc::new(SystemClock))
    }

    #[tokio::test]
    async fn seal_open_across_instances_and_projects() {
        let store = Arc::new(MemKeys::default());
        let ring = Keyring::from_keys([(1, SecretKey::generate())]);
        let a = envelope(ring.clone(), store.clone());
        let p = ProjectId::generate();
        let q = ProjectId::generate();
        let ct = a.seal(&p, b"token", b"aad").await.unwrap();
        assert_eq!(aead::header(&ct).unwrap().0, FORMAT_DATA_KEY);
        let b = envelope(ring, store.clone());
        assert_eq!(b.open(&p, &ct, b"aad").await.unwrap().as_slice(), b"token");
        assert!(b.open(&q, &ct, b"aad").await.is_err(), "another project's data key cannot open it");
        assert_eq!(store.list_data_keys().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn the_blocking_sealer_seals_what_open_reads() {
        let store = Arc::new(MemKeys::default());
        let e = envelope(Keyring::from_keys([(1, SecretKey::generate())]), store);
        let p = ProjectId::generate();
        let sealer = e.sealer(&p).await.unwrap().expect("an envelope has a blocking sealer");
        let ct = sealer.seal(b"token", b"aad").unwrap();
        assert_eq!(e.open(&p, &ct, b"aad").await.unwrap().as_slice(), b"token");
        assert!(e.open(&p, &ct, b"other").await.is_err(), "bound to its associated data");
        assert!(e.open(&ProjectId::generate(), &ct, b"aad").await.is_err(), "bound to its project's key");
    }

    #[tokio::test]
    async fn rotate_rewrap_retire_keeps_everything_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemKeys::default());
        let mut ring = Keyring::load_or_create(None, dir.path()).unwrap();
        let serving = envelope(ring.clone(), store.clone());
        let p = ProjectId::generate();
        let ct = serving.seal(&p, b"token", b"aad").await.unwrap();

        assert_eq!(ring.rotate().unwrap(), 2);
        let report = rewrap_data_keys(&ring, store.as_ref(), |_, _| {}).await.unwrap();
        assert_eq!(report, RewrapReport { total: 1, rewrapped: 1, already_current: 0 });
        assert_eq!(store.list_data_keys().await.unwrap()[0].master_key_version, 2);
        ring.retire(1).unwrap();

        // The server that was running keeps working (cached data key), and a fresh one that only
        // has version 2 reads everything too.
        assert_eq!(serving.open(&p, &ct, b"aad").await.unwrap().as_slice(), b"token");
        let fresh = envelope(Keyring::load_or_create(None, dir.path()).unwrap(), store.clone());
        assert_eq!(fresh.open(&p, &ct, b"aad").await.unwrap().as_slice(), b"token");
        // A second rewrap has nothing to do.
        let again = rewrap_data_keys(&ring, store.as_ref(), |_, _| {}).await.unwrap();
        assert_eq!(again.already_current, 1);
    }

    #[tokio::test]
    async fn a_running_server_sees_a_rotation_when_it_creates_a_new_data_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemKeys::default());
        let mut ring = Keyring::load_or_create(None, dir.path()).unwrap();
        let serving = envelope(ring.clone(), store.clone());
        ring.rotate().unwrap();
        let p = ProjectId::generate();
        serving.seal(&p, b"x", b"a").await.unwrap();
        assert_eq!(store.get_data_key(&p, 1).await.unwrap().unwrap().master_key_version, 2);
    }

    #[tokio::test]
    async fn check_data_keys_names_missing_and_different_versions() {
        let store = Arc::new(MemKeys::default());
        let right = SecretKey::generate();
        let serving = envelope(Keyring::from_keys([(1, right.clone())]), store.clone());
        for _ in 0..3 {
            serving.seal(&ProjectId::generate(), b"x", b"a").await.unwrap();
        }
        let keys = store.list_data_keys().await.unwrap();
        assert_eq!(check_data_keys(&Keyring::from_keys([(1, right.clone())]), &keys), Ok(()));
        assert_eq!(check_data_keys(&Keyring::from_keys([(1, SecretKey::generate())]), &[]), Ok(()));

        let other = check_data_keys(&Keyring::from_keys([(1, SecretKey::generate())]), &keys).unwrap_err();
        assert_eq!(
            (other.needed.clone(), other.missing.clone(), other.different.clone()),
            (vec![1], vec![], vec![1])
        );
        assert_eq!((other.unreadable, other.total), (3, 3));
        let text = other.to_string();
        assert!(text.contains("need master key version(s) 1; the keyring has version(s) 1"), "{text}");

        let lacking = check_data_keys(&Keyring::from_keys([(2, right)]), &keys).unwrap_err();
        assert_eq!((lacking.have.clone(), lacking.missing.clone()), (vec![2], vec![1]));
        assert!(lacking.to_string().contains("missing: 1"), "{lacking}");
    }

    #[tokio::test]
    async fn legacy_master_sealed_ciphertexts_still_open() {
        let key = SecretKey::generate();
        let legacy = aead::seal(&key.aead(), FORMAT_MASTER, 1, b"old", b"aad").unwrap();
        let env = envelope(Keyring::from_keys([(1, key)]), Arc::new(MemKeys::default()));
        assert_eq!(env.open(&ProjectId::generate(), &legacy, b"aad").await.unwrap().as_slice(), b"old");
    }
}

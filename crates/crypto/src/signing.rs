//! Session-JWT signing keys: ES384 (P-384) per project, private keys sealed under the project's
//! data key, public keys published as JWKs. Rotation keeps retired keys published until every
//! token they signed has expired.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::Alphanumeric;
use rand::Rng;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P384_SHA384_FIXED_SIGNING};
use serde_json::{json, Map, Value};

use idvault_core::auth::{SessionSigner, SigningKeyRecord};
use idvault_core::clock::SharedClock;
use idvault_core::error::{Error, Result};
use idvault_core::ids::ProjectId;
use idvault_core::secrets::Cipher;
use idvault_core::store::AuthStore;

const ALG: &str = "ES384";
/// How long a loaded key set is trusted before re-reading (picks up a rotation by the CLI).
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Least time between two reloads forced by a token whose `kid` is not in the cached set.
const KID_RELOAD_INTERVAL: Duration =
    Duration::from_millis(idvault_core::limits::SIGNING_KEY_RELOAD_INTERVAL_MS);

struct ProjectKeys {
    active_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: Vec<Value>,
    loaded: Instant,
}

pub struct JwtSigner {
    store: Arc<dyn AuthStore>,
    cipher: Arc<dyn Cipher>,
    clock: SharedClock,
    /// Retired keys stay published this long (the longest token lifetime).
    keep_published: Duration,
    cache: RwLock<HashMap<ProjectId, Arc<ProjectKeys>>>,
    /// When an unknown `kid` last made each project's keys reload: tokens naming made-up keys
    /// cannot make every request read the store.
    forced_reloads: Mutex<HashMap<ProjectId, Instant>>,
    create_lock: tokio::sync::Mutex<()>,
}

fn key_aad(project: &ProjectId, kid: &str) -> Vec<u8> {
    let mut aad = b"idvault/signing-key/v1".to_vec();
    aad.extend_from_slice(&(project.as_str().len() as u32).to_be_bytes());
    aad.extend_from_slice(project.as_str().as_bytes());
    aad.extend_from_slice(kid.as_bytes());
    aad
}

fn public_jwk(kid: &str, public_key: &[u8]) -> Result<Value> {
    // An uncompressed P-384 point: 0x04 | X (48) | Y (48).
    if public_key.len() != 97 || public_key[0] != 4 {
        return Err(Error::Internal("unexpected P-384 public key encoding".into()));
    }
    Ok(json!({
        "kty": "EC",
        "crv": "P-384",
        "x": URL_SAFE_NO_PAD.encode(&public_key[1..49]),
        "y": URL_SAFE_NO_PAD.encode(&public_key[49..97]),
        "kid": kid,
        "alg": ALG,
        "use": "sig",
    }))
}

fn decoding_key(jwk: &Value) -> Result<DecodingKey> {
    let (Some(x), Some(y)) = (jwk["x"].as_str(), jwk["y"].as_str()) else {
        return Err(Error::Internal("stored JWK lacks x/y".into()));
    };
    DecodingKey::from_ec_components(x, y)
        .map_err(|_| Error::Internal("stored JWK is not a valid EC key".into()))
}

impl JwtSigner {
    pub fn new(
        store: Arc<dyn AuthStore>,
        cipher: Arc<dyn Cipher>,
        clock: SharedClock,
        keep_published: Duration,
    ) -> Self {
        JwtSigner {
            store,
            cipher,
            clock,
            keep_published,
            cache: RwLock::new(HashMap::new()),
            forced_reloads: Mutex::new(HashMap::new()),
            create_lock: tokio::sync::Mutex::new(()),
        }
    }

    async fn generate(&self, project: &ProjectId) -> Result<SigningKeyRecord> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Internal("generating a signing key failed".into()))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| Error::Internal("loading a fresh signing key failed".into()))?;
        let kid: String = format!(
            "K{}",
            rand::thread_rng().sample_iter(&Alphanumeric).take(27).map(char::from).collect::<String>()
        );
        let jwk = public_jwk(&kid, pair.public_key().as_ref())?;
        let sealed = self.cipher.seal(project, pkcs8.as_ref(), &key_aad(project, &kid)).await?;
        Ok(SigningKeyRecord {
            project_id: project.clone(),
            kid,
            alg: ALG.into(),
            private_key: sealed,
            public_jwk: jwk.to_string(),
            created_ms: self.clock.now_ms(),
            retired_ms: None,
        })
    }

    /// Whether an unknown `kid` may reload the project's keys now (at most once per
    /// [`KID_RELOAD_INTERVAL`]); records the reload.
    fn may_force_reload(&self, project: &ProjectId) -> bool {
        let mut last = self.forced_reloads.lock().unwrap_or_else(|p| p.into_inner());
        match last.get(project) {
            Some(at) if at.elapsed() < KID_RELOAD_INTERVAL => false,
            _ => {
                last.insert(project.clone(), Instant::now());
                true
            }
        }
    }

    /// Loads and caches a project's keys. `create`: make the first key if the project has no
    /// active one (signing); otherwise (verifying) a project without keys has no valid token.
    async fn load(&self, project: &ProjectId, force: bool, create: bool) -> Result<Arc<ProjectKeys>> {
        if !force {
            if let Some(keys) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(project) {
                if keys.loaded.elapsed() < CACHE_TTL {
                    return Ok(keys.clone());
                }
            }
        }
        let mut records = self.store.list_signing_keys(project).await?;
        if !create && !records.iter().any(|r| r.retired_ms.is_none()) {
            return Err(Error::ForgedSession("signed by an unknown key"));
        }
        if !records.iter().any(|r| r.retired_ms.is_none()) {
            let _guard = self.create_lock.lock().await;
            records = self.store.list_signing_keys(project).await?;
            if !records.iter().any(|r| r.retired_ms.is_none()) {
                let fresh = self.generate(project).await?;
                self.store.insert_signing_key(&fresh).await?;
                records.push(fresh);
            }
        }
        let now = self.clock.now_ms();
        let keep = i64::try_from(self.keep_published.as_millis()).unwrap_or(i64::MAX);
        let active = records
            .iter()
            .filter(|r| r.retired_ms.is_none())
            .max_by_key(|r| r.created_ms)
            .ok_or_else(|| Error::Internal("no active signing key".into()))?;
        let der = self.cipher.open(project, &active.private_key, &key_aad(project, &active.kid)).await?;
        let encoding = EncodingKey::from_ec_der(&der);
        let mut decoding = HashMap::new();
        let mut jwks = Vec::new();
        for r in &records {
            let published = r.retired_ms.is_none_or(|at| at.saturating_add(keep) > now);
            if !published {
                continue;
            }
            let jwk: Value = serde_json::from_str(&r.public_jwk)
                .map_err(|_| Error::Storage("stored JWK is not JSON".into()))?;
            decoding.insert(r.kid.clone(), decoding_key(&jwk)?);
            jwks.push(jwk);
        }
        let keys = Arc::new(ProjectKeys {
            active_kid: active.kid.clone(),
            encoding,
            decoding,
            jwks,
            loaded: Instant::now(),
        });
        self.cache.write().unwrap_or_else(|p| p.into_inner()).insert(project.clone(), keys.clone());
        Ok(keys)
    }
}

#[async_trait]
impl SessionSigner for JwtSigner {
    async fn sign(&self, project: &ProjectId, claims: &Map<String, Value>) -> Result<String> {
        let keys = self.load(project, false, true).await?;
        let mut header = Header::new(Algorithm::ES384);
        header.kid = Some(keys.active_kid.clone());
        jsonwebtoken::encode(&header, claims, &keys.encoding)
            .map_err(|_| Error::Internal("signing a token failed".into()))
    }

    async fn verify(&self, project: &ProjectId, token: &str) -> Result<Map<String, Value>> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Error::ForgedSession("malformed token"))?;
        if header.alg != Algorithm::ES384 {
            return Err(Error::ForgedSession("unexpected algorithm"));
        }
        let kid = header.kid.ok_or(Error::ForgedSession("token has no kid"))?;
        let mut keys = self.load(project, false, false).await?;
        // A key made since the cache was loaded (a rotation by the CLI or another replica) is
        // found by a reload, bounded per project.
        if !keys.decoding.contains_key(&kid) && self.may_force_reload(project) {
            keys = self.load(project, true, false).await?;
        }
        let key = keys.decoding.get(&kid).ok_or(Error::ForgedSession("signed by an unknown key"))?;
        let mut validation = Validation::new(Algorithm::ES384);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation).map(|data| data.claims).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::InvalidSession("token expired"),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Error::ForgedSession("bad signature"),
                _ => Error::ForgedSession("token rejected"),
            },
        )
    }

    async fn jwks(&self, project: &ProjectId) -> Result<Vec<Value>> {
        Ok(self.load(project, false, true).await?.jwks.clone())
    }

    async fn rotate(&self, project: &ProjectId) -> Result<String> {
        let _guard = self.create_lock.lock().await;
        let fresh = self.generate(project).await?;
        self.store.insert_signing_key(&fresh).await?;
        self.store.retire_signing_keys_except(project, &fresh.kid, self.clock.now_ms()).await?;
        drop(_guard);
        self.load(project, true, true).await?;
        Ok(fresh.kid)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use idvault_core::auth::{AuthCode, OAuthState, ProjectAuthSettings, SessionRecord};
    use idvault_core::clock::{Clock, SystemClock};
    use idvault_core::ids::{ProviderName, UserId};
    use idvault_core::store::SignIn;

    /// Keeps signing keys in memory and counts the reads of a project's key set.
    #[derive(Default)]
    struct CountingKeys {
        keys: Mutex<Vec<SigningKeyRecord>>,
        reads: AtomicUsize,
    }

    fn unused<T>() -> Result<T> {
        Err(Error::Internal("not used by the signer".into()))
    }

    #[async_trait]
    impl AuthStore for CountingKeys {
        async fn list_signing_keys(&self, project: &ProjectId) -> Result<Vec<SigningKeyRecord>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.keys.lock().unwrap().iter().filter(|k| &k.project_id == project).cloned().collect())
        }
        async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
            self.keys.lock().unwrap().push(key.clone());
            Ok(())
        }
        async fn retire_signing_keys_except(&self, project: &ProjectId, kid: &str, at_ms: i64) -> Result<()> {
            for k in self.keys.lock().unwrap().iter_mut() {
                if &k.project_id == project && k.kid != kid && k.retired_ms.is_none() {
                    k.retired_ms = Some(at_ms);
                }
            }
            Ok(())
        }
        async fn insert_oauth_state(&self, _: &OAuthState, _: u64) -> Result<bool> {
            unused()
        }
        async fn take_oauth_state(&self, _: &[u8; 32]) -> Result<Option<OAuthState>> {
            unused()
        }
        async fn insert_auth_code(&self, _: &AuthCode) -> Result<()> {
            unused()
        }
        async fn take_auth_code(&self, _: &[u8; 32]) -> Result<Option<AuthCode>> {
            unused()
        }
        async fn insert_session(&self, _: &SessionRecord) -> Result<()> {
            unused()
        }
        async fn get_session(&self, _: &ProjectId, _: &str) -> Result<Option<SessionRecord>> {
            unused()
        }
        async fn revoke_session(&self, _: &ProjectId, _: &str, _: i64) -> Result<bool> {
            unused()
        }
        async fn advance_session(&self, _: &ProjectId, _: &str, _: i64) -> Result<bool> {
            unused()
        }
        async fn revoke_user_sessions(&self, _: &ProjectId, _: &UserId, _: i64) -> Result<u64> {
            unused()
        }
        async fn find_identity(&self, _: &ProjectId, _: &ProviderName, _: &str) -> Result<Option<UserId>> {
            unused()
        }
        async fn find_user_by_verified_email(&self, _: &ProjectId, _: &str) -> Result<Option<UserId>> {
            unused()
        }
        async fn complete_sign_in(&self, _: &ProjectId, _: &ProviderName, _: &SignIn) -> Result<UserId> {
            unused()
        }
        async fn get_auth_settings(&self, _: &ProjectId) -> Result<ProjectAuthSettings> {
            unused()
        }
        async fn set_auth_settings(&self, _: &ProjectId, _: &ProjectAuthSettings) -> Result<()> {
            unused()
        }
    }

    /// No encryption: the signer's key handling is under test, not sealing.
    struct PlainCipher;

    #[async_trait]
    impl Cipher for PlainCipher {
        async fn seal(&self, _: &ProjectId, plaintext: &[u8], _: &[u8]) -> Result<Vec<u8>> {
            Ok(plaintext.to_vec())
        }
        async fn open(
            &self,
            _: &ProjectId,
            ciphertext: &[u8],
            _: &[u8],
        ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
            Ok(zeroize::Zeroizing::new(ciphertext.to_vec()))
        }
    }

    fn signer(store: Arc<CountingKeys>) -> JwtSigner {
        JwtSigner::new(store, Arc::new(PlainCipher), Arc::new(SystemClock), Duration::from_secs(3600))
    }

    fn claims() -> Map<String, Value> {
        let exp = SystemClock.now_secs() + 600;
        json!({"sub": "U1", "exp": exp}).as_object().cloned().unwrap()
    }

    /// The token with its header's `kid` replaced (the signature no longer matters: the key is
    /// looked up first).
    fn with_kid(token: &str, kid: &str) -> String {
        let mut parts = token.splitn(2, '.');
        let (_, rest) = (parts.next().unwrap(), parts.next().unwrap());
        let header = json!({"alg": "ES384", "typ": "JWT", "kid": kid});
        format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
    }

    #[tokio::test]
    async fn unknown_kids_do_not_reload_the_keys_on_every_request() {
        let store = Arc::new(CountingKeys::default());
        let signer = signer(store.clone());
        let p = ProjectId::generate();
        let token = signer.sign(&p, &claims()).await.unwrap();
        assert_eq!(signer.verify(&p, &token).await.unwrap()["sub"], "U1");
        let before = store.reads.load(Ordering::SeqCst);
        for i in 0..50 {
            let forged = with_kid(&token, &format!("Kmadeup{i}"));
            assert!(matches!(signer.verify(&p, &forged).await, Err(Error::ForgedSession(_))));
        }
        let reloads = store.reads.load(Ordering::SeqCst) - before;
        assert!(reloads <= 1, "50 unknown kids reloaded the key set {reloads} times");
        // The real key still verifies, from the cache.
        assert!(signer.verify(&p, &token).await.is_ok());
    }

    #[tokio::test]
    async fn a_key_rotated_elsewhere_is_found_by_one_reload() {
        let store = Arc::new(CountingKeys::default());
        let serving = signer(store.clone());
        let p = ProjectId::generate();
        serving.sign(&p, &claims()).await.unwrap();
        // Another process (the CLI, a replica) rotates and signs with the new key.
        let other = signer(store.clone());
        other.rotate(&p).await.unwrap();
        let token = other.sign(&p, &claims()).await.unwrap();
        assert!(serving.verify(&p, &token).await.is_ok());
    }

    #[tokio::test]
    async fn verifying_never_creates_a_key() {
        let store = Arc::new(CountingKeys::default());
        let issuer = signer(Arc::new(CountingKeys::default()));
        let p = ProjectId::generate();
        let token = issuer.sign(&p, &claims()).await.unwrap();
        let verifier = signer(store.clone());
        assert!(matches!(verifier.verify(&p, &token).await, Err(Error::ForgedSession(_))));
        assert!(store.keys.lock().unwrap().is_empty(), "verify made a signing key");
    }

    #[tokio::test]
    async fn a_token_not_signed_here_is_forged_and_an_expired_one_only_invalid() {
        let signer = signer(Arc::new(CountingKeys::default()));
        let p = ProjectId::generate();
        let token = signer.sign(&p, &claims()).await.unwrap();
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        for forged in [tampered.as_str(), "not.a.jwt", "garbage"] {
            let err = signer.verify(&p, forged).await.unwrap_err();
            assert!(err.is_failed_credential(), "{forged}: {err:?}");
        }
        let mut old = claims();
        old.insert("exp".into(), json!(SystemClock.now_secs() - 10));
        let expired = signer.sign(&p, &old).await.unwrap();
        let err = signer.verify(&p, &expired).await.unwrap_err();
        assert!(matches!(err, Error::InvalidSession("token expired")), "{err:?}");
        assert!(!err.is_failed_credential());
    }
}

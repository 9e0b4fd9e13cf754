//! idvault-crypto: key material and authenticated encryption of secrets at rest.
//!
//! Every secret idvault stores (provider access and refresh tokens now; client secrets later) is
//! sealed with XChaCha20-Poly1305 under the master key. The 192-bit random nonce makes random
//! nonces safe for any number of messages. The associated data, chosen by the domain, binds a
//! ciphertext to its row, so a ciphertext copied to another row fails to open.
//!
//! Ciphertext layout: `0x01 | key version (u32 BE) | nonce (24) | ciphertext+tag`. The key version
//! lets a later master-key rotation keep reading old rows.
//!
//! This crate must not log, format or return key bytes or plaintexts in errors.

mod master_key;

pub use master_key::{load_or_create_master_key, MasterKeySource};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use idvault_core::error::{Error, Result};
use idvault_core::vault::TokenCipher;

const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// A 256-bit key. Zeroed on drop, never printed.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(Zeroizing::new(bytes))
    }

    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        SecretKey(bytes)
    }

    fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Seals and opens secrets with the master key.
pub struct Sealer {
    version: u32,
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(version: u32, key: &SecretKey) -> Self {
        Sealer {
            version,
            aead: XChaCha20Poly1305::new(key.bytes().into()),
        }
    }
}

impl TokenCipher for Sealer {
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| Error::Internal("encryption failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        if ciphertext.len() < HEADER_LEN + 16 || ciphertext[0] != FORMAT_V1 {
            return Err(Error::Decrypt("unknown ciphertext format"));
        }
        let mut version = [0u8; 4];
        version.copy_from_slice(&ciphertext[1..5]);
        if u32::from_be_bytes(version) != self.version {
            return Err(Error::Decrypt(
                "sealed under a master key version this server does not have",
            ));
        }
        let nonce = XNonce::from_slice(&ciphertext[5..HEADER_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &ciphertext[HEADER_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| {
                Error::Decrypt("authentication failed: wrong key, or the ciphertext belongs to another row")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let sealer = Sealer::new(1, &SecretKey::generate());
        let ct = sealer.seal(b"ya29.token", b"row-a").unwrap();
        assert_eq!(sealer.open(&ct, b"row-a").unwrap().as_slice(), b"ya29.token");
        assert!(matches!(sealer.open(&ct, b"row-b"), Err(Error::Decrypt(_))));
        // Nonces are random: sealing twice differs.
        assert_ne!(sealer.seal(b"ya29.token", b"row-a").unwrap(), ct);
        // The plaintext does not appear in the ciphertext.
        assert!(!ct.windows(10).any(|w| w == b"ya29.token"));
    }

    #[test]
    fn wrong_key_or_tampering_fails_cleanly() {
        let a = Sealer::new(1, &SecretKey::generate());
        let b = Sealer::new(1, &SecretKey::generate());
        let mut ct = a.seal(b"secret", b"x").unwrap();
        assert!(b.open(&ct, b"x").is_err());
        let last = ct.len() - 1;
        ct[last] ^= 1;
        assert!(a.open(&ct, b"x").is_err());
        assert!(a.open(&[1, 2, 3], b"x").is_err());
        let other_version = Sealer::new(2, &SecretKey::generate());
        assert!(other_version.open(&a.seal(b"s", b"x").unwrap(), b"x").is_err());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = SecretKey::from_bytes([7u8; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
        assert!(!format!("{:?}", Sealer::new(1, &k)).contains('7'));
    }
}

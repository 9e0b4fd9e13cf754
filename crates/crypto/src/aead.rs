//! XChaCha20-Poly1305 with a small self-describing header.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use zeroize::Zeroizing;

use idvault_core::error::{Error, Result};

pub(crate) const FORMAT_MASTER: u8 = 1;
pub(crate) const FORMAT_DATA_KEY: u8 = 2;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;

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

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn aead(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.bytes().into())
    }
}

impl Clone for SecretKey {
    fn clone(&self) -> Self {
        SecretKey(Zeroizing::new(*self.0))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

pub(crate) fn seal(
    aead: &XChaCha20Poly1305,
    format: u8,
    version: u32,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let sealed = aead
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .map_err(|_| Error::Internal("encryption failed".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.push(format);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The format byte and key version of a ciphertext, if it is well formed.
pub(crate) fn header(ciphertext: &[u8]) -> Result<(u8, u32)> {
    if ciphertext.len() < HEADER_LEN + TAG_LEN {
        return Err(Error::Decrypt("ciphertext too short"));
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&ciphertext[1..5]);
    Ok((ciphertext[0], u32::from_be_bytes(version)))
}

pub(crate) fn open(aead: &XChaCha20Poly1305, ciphertext: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    header(ciphertext)?;
    let nonce = XNonce::from_slice(&ciphertext[5..HEADER_LEN]);
    aead.decrypt(nonce, Payload { msg: &ciphertext[HEADER_LEN..], aad }).map(Zeroizing::new).map_err(|_| {
        Error::Decrypt("authentication failed: wrong key, or the ciphertext belongs to another row")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_binding_and_tampering() {
        let key = SecretKey::generate();
        let aead = key.aead();
        let ct = seal(&aead, FORMAT_DATA_KEY, 7, b"ya29.token", b"row-a").unwrap();
        assert_eq!(header(&ct).unwrap(), (FORMAT_DATA_KEY, 7));
        assert_eq!(open(&aead, &ct, b"row-a").unwrap().as_slice(), b"ya29.token");
        assert!(matches!(open(&aead, &ct, b"row-b"), Err(Error::Decrypt(_))));
        assert_ne!(seal(&aead, FORMAT_DATA_KEY, 7, b"ya29.token", b"row-a").unwrap(), ct, "random nonces");
        assert!(!ct.windows(10).any(|w| w == b"ya29.token"));
        let mut bad = ct.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(open(&aead, &bad, b"row-a").is_err());
        assert!(open(&SecretKey::generate().aead(), &ct, b"row-a").is_err());
        assert!(header(&[2, 0, 0]).is_err());
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let k = SecretKey::from_bytes([7u8; 32]);
        assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
    }
}

//! idvault-crypto: key material and authenticated encryption of secrets at rest. The only crate
//! that touches key bytes; it never logs, formats or returns them (or plaintexts) in errors.
//!
//! Envelope encryption:
//! - the **master key** (a versioned keyring: `IDVAULT_MASTER_KEY`, or `master.key` in the data
//!   directory) only wraps data keys;
//! - each project has a random 256-bit **data key**, stored wrapped by a master key version;
//! - every secret (provider tokens, client secrets) is sealed with XChaCha20-Poly1305 under its
//!   project's data key. The 192-bit random nonce makes random nonces safe for any number of
//!   messages, and the associated data, chosen by the domain, binds a ciphertext to its row.
//!
//! Rotating the master key therefore re-wraps a handful of data keys, never the tokens.
//!
//! Ciphertext layouts (first byte):
//! - `0x02 | data key version (u32 BE) | nonce (24) | ciphertext+tag`: sealed by a data key;
//! - `0x01 | master key version (u32 BE) | nonce (24) | ciphertext+tag`: sealed directly by the
//!   master key (the first release; still readable).

mod aead;
mod envelope;
mod keyring;
mod signing;

pub use aead::SecretKey;
pub use envelope::{check_data_keys, rewrap_data_keys, Envelope, KeyringMismatch, RewrapReport};
pub use keyring::{generate_entry, KeySource, Keyring, KeyringError, MASTER_KEY_FILE};
pub use signing::JwtSigner;

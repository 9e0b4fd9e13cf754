//! A provider's id_token at sign-in: its header (`idvault_oauth::id_token_header`: only
//! asymmetric algorithms) and its claims (`idvault_oauth::id_token_claims`: signature, `exp`,
//! `iss`, `aud`, `sub`, `nonce`). The first byte picks what the rest is:
//! - even: a whole id_token as a provider might send it (the header parser meets the bytes; the
//!   signature check refuses what is not signed by the key);
//! - odd: the claims, signed here with the key the check trusts, after a prefix of valid claims
//!   that the fuzzed text may complete, repeat or contradict, so that the claim checks themselves
//!   meet the bytes.
//! Accepted claims must be exactly what the check asks for; anything else is refused as
//! `InvalidIdToken`, never a panic.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use idvault_core::error::Error;
use idvault_core::ids::ProjectId;
use idvault_core::provider::IdTokenCheck;
use idvault_oauth::{id_token_claims, id_token_header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;

const ISSUER: &str = "https://issuer.example";
const CLIENT_ID: &str = "client-1";
const NONCE: &str = "nonce-1";
/// Valid claims (a far `exp`) that the fuzzed text continues.
const CLAIMS_PREFIX: &str =
    r#"{"iss":"https://issuer.example","aud":"client-1","sub":"s","nonce":"nonce-1","exp":4102444800,"#;

struct Keys {
    signing: EncodingKey,
    verifying: DecodingKey,
    project: ProjectId,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("an Ed25519 key");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("the key just made");
        Keys {
            signing: EncodingKey::from_ed_der(pkcs8.as_ref()),
            verifying: DecodingKey::from_ed_der(pair.public_key().as_ref()),
            project: ProjectId::parse("Pfuzz").expect("a project id"),
        }
    })
}

fn signed(claims: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let message = format!("{header}.{payload}");
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &keys().signing, Algorithm::EdDSA).expect("signing");
    format!("{message}.{signature}")
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let id_token = if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        text.to_owned()
    } else {
        signed(&[CLAIMS_PREFIX.as_bytes(), rest].concat())
    };
    let keys = keys();
    let check = IdTokenCheck {
        project: &keys.project,
        jwks_uri: "https://issuer.example/jwks",
        issuer: ISSUER,
        client_id: CLIENT_ID,
        nonce: NONCE,
    };
    let header = match id_token_header(&id_token) {
        Ok(header) => header,
        Err(e) => return assert!(matches!(e, Error::InvalidIdToken(_)), "{e:?}"),
    };
    assert!(!matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
    match id_token_claims(&id_token, header.alg, &keys.verifying, &check) {
        Ok(claims) => {
            assert_eq!(claims.get("iss").and_then(Value::as_str), Some(ISSUER));
            assert_eq!(claims.get("nonce").and_then(Value::as_str), Some(NONCE));
            let audience_ok = match claims.get("aud") {
                Some(Value::String(a)) => a == CLIENT_ID,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(CLIENT_ID)),
                _ => false,
            };
            assert!(audience_ok, "accepted for another audience: {:?}", claims.get("aud"));
            assert!(claims.contains_key("sub") && claims.contains_key("exp"));
        }
        Err(e) => assert!(matches!(e, Error::InvalidIdToken(_)), "{e:?}"),
    }
});

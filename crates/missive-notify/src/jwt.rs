//! Private keys from PEM and compact JWTs signed with them, over ring.
//!
//! Two push services authenticate with a JWT the server signs itself: APNs takes an ES256
//! token made with the `.p8` key from Apple's developer account, Google's OAuth endpoint an
//! RS256 assertion made with a service account's key. Both keys arrive as unencrypted PKCS#8
//! PEM (`-----BEGIN PRIVATE KEY-----`). ring is already the process's TLS crypto, so this
//! adds no second crypto library (house-style "rustls crypto providers").

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::Value;

/// Why a key could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a PEM private key: {0}")]
    Pem(&'static str),
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`): ring reads only PKCS#8.
    #[error("the key is {0}; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in KEY`")]
    NotPkcs8(&'static str),
    #[error("the key was rejected: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Signing,
}

/// The DER bytes of the first `PRIVATE KEY` block of a PEM text.
pub fn pkcs8_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let begin = pem.find("-----BEGIN ").ok_or(KeyError::Pem("no BEGIN line"))?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or(KeyError::Pem("unterminated BEGIN line"))?;
    match &rest[..label_end] {
        "PRIVATE KEY" => {}
        "RSA PRIVATE KEY" => return Err(KeyError::NotPkcs8("PKCS#1 (RSA PRIVATE KEY)")),
        "EC PRIVATE KEY" => return Err(KeyError::NotPkcs8("SEC1 (EC PRIVATE KEY)")),
        "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Pem("the key is encrypted")),
        _ => return Err(KeyError::Pem("not a PRIVATE KEY block")),
    }
    let body = &rest[label_end + 5..];
    let end = body.find("-----END PRIVATE KEY-----").ok_or(KeyError::Pem("no END line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).map_err(|_| KeyError::Pem("the body is not base64"))
}

/// A PEM text holding `der` under `label`, 64 columns wide: how tests hand keys to the code
/// that reads them.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The signing input of a JWT: `base64url(header) . base64url(claims)`.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn finish(input: String, signature: &[u8]) -> String {
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// ES256 (ECDSA P-256 with SHA-256, the 64-byte `r || s` form JWS wants).
pub struct Es256Key {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Es256Key {
    pub fn from_pem(pem: &str) -> Result<Es256Key, KeyError> {
        let der = pkcs8_der_from_pem(pem)?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Es256Key { key, rng })
    }

    /// A compact JWT of `claims`, with `alg: ES256` added to `header`.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, KeyError> {
        header["alg"] = "ES256".into();
        let input = signing_input(&header, claims);
        let sig = self.key.sign(&self.rng, input.as_bytes()).map_err(|_| KeyError::Signing)?;
        Ok(finish(input, sig.as_ref()))
    }
}

/// RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct Rs256Key {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl Rs256Key {
    pub fn from_pem(pem: &str) -> Result<Rs256Key, KeyError> {
        let der = pkcs8_der_from_pem(pem)?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Rs256Key { key, rng: SystemRandom::new() })
    }

    /// A compact JWT of `claims`, with `alg: RS256` added to `header`.
    pub fn sign(&self, mut header: Value, claims: &Value) -> Result<String, KeyError> {
        header["alg"] = "RS256".into();
        let input = signing_input(&header, claims);
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key.sign(&RSA_PKCS1_SHA256, &self.rng, input.as_bytes(), &mut sig).map_err(|_| KeyError::Signing)?;
        Ok(finish(input, &sig))
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};
    use serde_json::json;

    use super::*;

    #[test]
    fn es256_tokens_verify_with_the_public_key() {
        let rng = SystemRandom::new();
        let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = der_to_pem("PRIVATE KEY", der.as_ref());
        let key = Es256Key::from_pem(&pem).unwrap();
        let token = key.sign(json!({"kid": "K"}), &json!({"iss": "T", "iat": 1})).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "K"}));
        let public = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref(), &rng).unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(sig.len(), 64, "JWS ES256 signatures are r || s");
        let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public.public_key().as_ref());
        verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig).unwrap();
        assert!(verifier.verify(b"other", &sig).is_err());
    }

    #[test]
    fn pem_errors_say_what_is_wrong() {
        assert_eq!(pkcs8_der_from_pem("hello"), Err(KeyError::Pem("no BEGIN line")));
        let pkcs1 = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(pkcs8_der_from_pem(pkcs1), Err(KeyError::NotPkcs8(_))));
        let bad = "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n";
        assert_eq!(pkcs8_der_from_pem(bad), Err(KeyError::Pem("the body is not base64")));
        let junk = der_to_pem("PRIVATE KEY", b"not a key");
        assert!(matches!(Es256Key::from_pem(&junk), Err(KeyError::Rejected(_))));
        assert!(matches!(Rs256Key::from_pem(&junk), Err(KeyError::Rejected(_))));
    }
}
